"""Who is asking, and what they may touch: duties separated by role.

The institution is the party under supervision: it is paid per verified hour, so it
never holds the means to make its own evidence.

- `learner` acts as themselves only: gives or withdraws biometric consent, enrols
  their face, starts a session, sends study frames, reads their own data.
- `operator` (an institution's staff) registers learners, courses, classes, rosters
  and cameras, files classes, enters assessment results, classifies its courses while
  their rules are unpublished, adds and removes its learners' key groups, reads its
  institution and attaches a statement to a flag on its learners. It never decides a
  flag, sets a subsidy standard, records its own profile or a certificate, records
  consent, starts a session or sends a frame.
- `bureau` (the human-resources bureau) sets subsidy standards and the catalogue,
  changes institution status, credit codes and profiles (division, licence), records
  skill-level certificates after a passed assessment, decides flags, issues learners'
  accounts, and records consent and enrolment given in person (with the signed
  form's hash) and the non-face path.
- `inspector` reads everything, draws spot checks, exports evidence, decides flags.
- `admin` administers the platform (institutions, tokens, seals, backups) and may do
  what the bureau does; it never acts as a learner.

Pure functions on a `Principal`; they raise domain errors that the API turns into
401/403.
"""

from __future__ import annotations

from dataclasses import dataclass

from storage.types import Role, Token
from supervisor.errors import NotYourData, OtherInstitution, WrongRole

# Who reads across institutions.
READ_ALL = (Role.admin, Role.bureau, Role.inspector)
# Who sets the rules the money follows and acts for the bureau in person.
BUREAU = (Role.admin, Role.bureau)
# Who decides a flag.
DECIDERS = (Role.admin, Role.bureau, Role.inspector)


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


def require_bureau(p: Principal) -> None:
    """Subsidy standards, the catalogue, institution status, acts in person."""
    require_role(p, *BUREAU)


def require_decider(p: Principal) -> None:
    """Deciding a flag: never the institution the flag is about."""
    require_role(p, *DECIDERS)


def can_read_institution(p: Principal, institution_id: int) -> None:
    """Admins, the bureau and inspectors read everything; operators only their institution."""
    if p.role in READ_ALL:
        return
    if p.role is Role.operator:
        if p.institution_id != institution_id:
            raise OtherInstitution("this belongs to another institution")
        return
    raise WrongRole("learners cannot read institution data")


def can_write_institution(p: Principal, institution_id: int) -> None:
    """The institution's registration duties (learners, courses, classes, rosters,
    cameras, filings, assessment results): admins, and operators of that institution."""
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


def can_act_as_learner(p: Principal, learner_id: int) -> None:
    """Study actions (consent, enrolment, sessions, frames): the learner, with their own
    token, and nobody else."""
    if p.role is not Role.learner:
        raise WrongRole(
            "only the learner, with their own token, can do this", reason="learner_only"
        )
    if p.learner_id != learner_id:
        raise NotYourData("a learner can only act for themselves")


def can_act_for_learner_in_person(p: Principal, learner_id: int) -> None:
    """The learner themselves, or bureau staff acting in person (consent on a signed
    form, an enrolment photo taken at the counter)."""
    if p.role in BUREAU:
        return
    can_act_as_learner(p, learner_id)
