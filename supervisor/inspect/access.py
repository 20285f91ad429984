"""Who may use the inspector's workspace, what they may read, and the log of their reads.

Inspectors (and admins) read across institutions; operators only their own
institution; learners not at all. Every read of personal data through the
workspace is written to the access log (who, which learner/session/class, when)
before the data is returned.
"""

from __future__ import annotations

from storage.types import Learner, Role, StudySession, TrainingClass
from supervisor.auth import READ_ALL, Principal, can_read_institution, require_role
from supervisor.context import Context
from supervisor.ledger import classroom as cev


def require_workspace(p: Principal) -> None:
    """Admins, inspectors and operators; `WrongRole` for anyone else."""
    require_role(p, *READ_ALL, Role.operator)


class Workspace:
    """The scope checks and the access log that every room of the workspace shares."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def log(
        self,
        p: Principal,
        action: str,
        *,
        institution_id: int | None = None,
        learner_id: int | None = None,
        session_id: str | None = None,
        class_id: int | None = None,
        detail: str = "",
    ) -> None:
        """Write one read to the access log (before the data is returned)."""
        await self.ctx.db(
            self.ctx.storage.access_log.record,
            self.ctx.clock(),
            p.actor + (f" ({p.label})" if p.label else ""),
            p.role.value,
            action,
            institution_id=institution_id,
            learner_id=learner_id,
            session_id=session_id,
            class_id=class_id,
            detail=detail,
        )

    async def session(self, p: Principal, session_id: str) -> StudySession:
        """The session, if the principal may read its institution."""
        require_workspace(p)
        session = await self.ctx.db(self.ctx.storage.registry.get_session, session_id)
        can_read_institution(p, session.institution_id)
        return session

    async def training_class(self, p: Principal, class_id: int) -> TrainingClass:
        """The class, if the principal may read its institution."""
        require_workspace(p)
        tc = await self.ctx.db(self.ctx.storage.classroom.get_class, class_id)
        can_read_institution(p, tc.institution_id)
        return tc

    async def learner(self, p: Principal, learner_id: int) -> Learner:
        """The learner, if the principal may read their institution."""
        lr = await self.ctx.db(self.ctx.storage.registry.get_learner, learner_id)
        require_workspace(p)
        can_read_institution(p, lr.institution_id)
        return lr

    def class_chains(self, tc: TrainingClass) -> list[str]:
        """The class's chain and each rostered learner's chain of it (blocking)."""
        roster = [r.learner_id for r in self.ctx.storage.classroom.roster(tc.id)]
        chains = [cev.class_chain(tc.id)]
        chains += [cev.learner_class_chain(tc.id, lid) for lid in roster]
        return chains
