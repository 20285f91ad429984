"""Who is asking, and what they may touch.

Roles: `admin` (everything), `operator` (one institution), `inspector`
(read-only across institutions), `learner` (own data only). Pure functions on a
`Principal`; they raise domain errors that the API turns into 401/403.
"""

from __future__ import annotations

from dataclasses import dataclass

from storage.types import Role, Token
from supervisor.errors import NotYourData, OtherInstitution, WrongRole


@dataclass(frozen=True, slots=True)
class Principal:
    token_id: int
    role: Role
    institution_id: int | None
    learner_id: int | None
    label: str

    @classmethod
    def from_token(cls, token: Token) -> Principal:
        return cls(token.id, token.role, token.institution_id, token.learner_id, token.label)

    @property
    def actor(self) -> str:
        """How the principal is named in ledger events: role and token id, never the secret."""
        return f"{self.role.value}:{self.token_id}"


def require_role(p: Principal, *roles: Role) -> None:
    if p.role not in roles:
        allowed = ", ".join(r.value for r in roles)
        raise WrongRole(f"this needs the role {allowed}; the token has {p.role.value}")


def can_read_institution(p: Principal, institution_id: int) -> None:
    """Admins and inspectors read everything; operators only their institution."""
    if p.role in (Role.admin, Role.inspector):
        return
    if p.role is Role.operator:
        if p.institution_id != institution_id:
            raise OtherInstitution("this belongs to another institution")
        return
    raise WrongRole("learners cannot read institution data")


def can_write_institution(p: Principal, institution_id: int) -> None:
    """Admins, and operators of that institution. Inspectors are read-only."""
    if p.role is Role.admin:
        return
    if p.role is Role.operator:
        if p.institution_id != institution_id:
            raise OtherInstitution("this belongs to another institution")
        return
    raise WrongRole(f"the role {p.role.value} cannot change institution data")


def can_read_learner(p: Principal, learner_id: int, institution_id: int) -> None:
    """A learner reads only their own data; staff by institution scope."""
    if p.role is Role.learner:
        if p.learner_id != learner_id:
            raise NotYourData("a learner can only read their own data")
        return
    can_read_institution(p, institution_id)


def can_act_as_learner(p: Principal, learner_id: int, institution_id: int) -> None:
    """Study actions (sessions, checks): the learner, or an admin/operator of the institution."""
    if p.role is Role.learner:
        if p.learner_id != learner_id:
            raise NotYourData("a learner can only act on their own sessions")
        return
    can_write_institution(p, institution_id)
