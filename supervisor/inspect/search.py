"""The workspace's search: sessions and classes by learner, institution, course,
date, outcome and flags, at most `MAX_RESULTS` rows, newest sessions first."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta

from storage.types import Learner, Role
from supervisor.auth import Principal, can_read_institution
from supervisor.context import Context
from supervisor.inspect.access import Workspace, require_workspace
from supervisor.ledger import codec
from supervisor.ledger import events as ev
from supervisor.registry.identity import mask_id_number
from supervisor.rules.crediting import credit

MAX_RESULTS = 200


def learner_matches(learner: Learner, query: str) -> bool:
    """Name substring, or a masked/partial ID (first and last four characters)."""
    q = query.strip().lower()
    if not q:
        return True
    if q in learner.full_name.lower():
        return True
    masked = mask_id_number(learner.id_number).lower()
    if "*" in q:
        return q == masked
    # A partial ID matches only the characters a masked ID shows.
    return len(q) >= 4 and (masked.startswith(q) or masked.endswith(q))


@dataclass(frozen=True, slots=True)
class SearchRow:
    kind: str  # session | class
    id: str
    institution: str
    course: str
    learner_name: str
    learner_masked_id: str
    started_at: datetime
    ended_at: datetime | None
    outcome: str
    credited_seconds: float | None
    flags: int


@dataclass(frozen=True, slots=True)
class SearchQuery:
    learner: str = ""
    institution_id: int | None = None
    course_id: int | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None
    outcome: str = ""
    flagged: str = ""  # "" | any | open
    kind: str = ""  # "" | session | class


class Search:
    def __init__(self, ctx: Context, workspace: Workspace) -> None:
        self.ctx = ctx
        self.storage = ctx.storage
        self.workspace = workspace

    async def search(self, p: Principal, q: SearchQuery) -> list[SearchRow]:
        """The rows matching `q` within the principal's scope; the search is logged."""
        require_workspace(p)
        if p.role is Role.operator:
            if q.institution_id is not None:
                can_read_institution(p, q.institution_id)
            q = dataclasses.replace(q, institution_id=p.institution_id)
        rows = await self.ctx.db(self._search, q)
        await self.workspace.log(
            p,
            "search",
            institution_id=q.institution_id,
            detail=f"learner={q.learner!r} results={len(rows)}",
        )
        return rows

    def _search(self, q: SearchQuery) -> list[SearchRow]:
        reg = self.storage.registry
        institutions = {i.id: i for i in reg.list_institutions()}
        courses = {c.id: c for c in reg.list_courses(q.institution_id)}
        learners = {lr.id: lr for lr in reg.list_learners(q.institution_id)}
        matching = {i for i, lr in learners.items() if learner_matches(lr, q.learner)}
        flags = reg.list_flags(None, q.institution_id)
        flag_count: dict[int, int] = {}
        for f in flags:
            if f.learner_id is not None and (q.flagged != "open" or f.status.value == "open"):
                flag_count[f.learner_id] = flag_count.get(f.learner_id, 0) + 1
        out: list[SearchRow] = []
        gap = timedelta(seconds=self.ctx.settings.policy.max_credited_gap_s)

        def in_range(at: datetime) -> bool:
            return (q.date_from is None or at >= q.date_from) and (
                q.date_to is None or at < q.date_to
            )

        if q.kind in ("", "session"):
            for s in reversed(reg.list_sessions(q.institution_id)):
                if len(out) >= MAX_RESULTS:
                    break
                if s.learner_id not in matching or not in_range(s.started_at):
                    continue
                if q.course_id is not None and s.course_id != q.course_id:
                    continue
                if q.flagged and not flag_count.get(s.learner_id):
                    continue
                chain = codec.decode_all(self.storage.ledger.read_chain(s.chain_id))
                outcome = "open"
                for _, e in chain:
                    if isinstance(e, ev.SessionEnded):
                        outcome = e.reason
                if q.outcome and q.outcome != outcome:
                    continue
                lr = learners[s.learner_id]
                c = credit([e for _, e in chain], gap)
                out.append(
                    SearchRow(
                        "session",
                        s.id,
                        institutions[s.institution_id].name,
                        courses[s.course_id].name if s.course_id in courses else "",
                        lr.full_name,
                        mask_id_number(lr.id_number),
                        s.started_at,
                        s.ended_at,
                        outcome,
                        c.credited_seconds,
                        flag_count.get(s.learner_id, 0),
                    )
                )
        if q.kind in ("", "class") and not q.outcome:
            for tc in self.storage.classroom.list_classes(q.institution_id, q.course_id):
                if len(out) >= MAX_RESULTS or not in_range(tc.starts_at):
                    continue
                roster = [r.learner_id for r in self.storage.classroom.roster(tc.id)]
                if q.learner.strip() and not any(r in matching for r in roster):
                    continue
                n_flags = sum(flag_count.get(r, 0) for r in roster)
                if q.flagged and not n_flags:
                    continue
                out.append(
                    SearchRow(
                        "class",
                        str(tc.id),
                        institutions[tc.institution_id].name,
                        courses[tc.course_id].name if tc.course_id in courses else "",
                        tc.name,
                        f"{len(roster)} learners",
                        tc.starts_at,
                        tc.ends_at,
                        tc.mode.value,
                        None,
                        n_flags,
                    )
                )
        return out
