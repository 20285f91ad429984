"""Bodies of the appeal endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from storage.types import Appeal
from supervisor.api.schemas.common import In
from supervisor.i18n import LocalTime
from supervisor.subsidy.appeals import Appealable

# Longer than the service's limit (2,000 after trimming), so that a long statement gets
# the stable reason `statement_too_long` rather than a schema error.
_TEXT_MAX = 10_000


class AppealIn(In):
    subject: Literal["flag", "check", "roll_call"] = Field(
        description="A flag raised on you, a failed or missed check, or a roll call that "
        "found you absent."
    )
    statement: str = Field(max_length=_TEXT_MAX, description="Why (1 to 2,000 characters).")
    flag_id: int | None = Field(None, ge=1, description="The flag (subject `flag`).")
    chain_id: str | None = Field(
        None, max_length=100, description="The chain of the check or roll call."
    )
    seq: int | None = Field(None, ge=1, description="Its event's seq in that chain.")


class AppealDecisionIn(In):
    upheld: bool = Field(description="True: the appeal is upheld; false: dismissed.")
    note: str = Field(max_length=_TEXT_MAX, description="Why (1 to 2,000 characters).")


class AppealDecisionOut(BaseModel):
    upheld: bool
    note: str
    decided_by: str
    decided_at: datetime
    decided_at_local: str = Field(description="In `web.timezone` (Asia/Shanghai).")
    chain_id: str
    seq: int
    hash: str


class AppealOut(BaseModel):
    id: int
    learner_id: int
    institution_id: int | None
    subject: str
    flag_id: int | None
    chain_id: str | None
    seq: int | None
    statement: str
    status: Literal["open", "upheld", "dismissed"]
    filed_at: datetime
    filed_at_local: str = Field(description="In `web.timezone` (Asia/Shanghai).")
    ledger_chain: str = Field(description="The appeal's own ledger chain, `appeal:<id>`.")
    decision: AppealDecisionOut | None

    @classmethod
    def of(cls, a: Appeal, clock: LocalTime) -> AppealOut:
        d = a.decision
        return cls(
            id=a.id,
            learner_id=a.learner_id,
            institution_id=a.institution_id,
            subject=a.subject.value,
            flag_id=a.flag_id,
            chain_id=a.chain_id,
            seq=a.seq,
            statement=a.statement,
            status=a.status.value,
            filed_at=a.filed_at,
            filed_at_local=clock.format(a.filed_at),
            ledger_chain=f"appeal:{a.id}",
            decision=(
                AppealDecisionOut(
                    upheld=d.upheld,
                    note=d.note,
                    decided_by=d.decided_by,
                    decided_at=d.decided_at,
                    decided_at_local=clock.format(d.decided_at),
                    chain_id=d.chain_id,
                    seq=d.seq,
                    hash=d.hash,
                )
                if d is not None
                else None
            ),
        )


class AppealableFlagOut(BaseModel):
    flag_id: int
    kind: str
    status: str
    raised_at: datetime
    raised_at_local: str
    appeal: AppealOut | None = Field(description="The latest appeal on it, if any.")


class AppealableFailureOut(BaseModel):
    subject: Literal["check", "roll_call"]
    chain_id: str
    seq: int
    at: datetime
    at_local: str = Field(description="In `web.timezone` (Asia/Shanghai).")
    verdict: str = Field(description="The check's verdict, `missed`, or `absent`.")
    course_id: int | None
    appeal: AppealOut | None = Field(description="The latest appeal on it, if any.")


class AppealableOut(BaseModel):
    flags: list[AppealableFlagOut] = Field(
        description="Flags that hold you up (or that you appealed); no other learner's data."
    )
    failures: list[AppealableFailureOut] = Field(
        description="Failed or missed checks and roll calls that found you absent, newest "
        "first (at most 200)."
    )

    @classmethod
    def of(cls, found: Appealable, clock: LocalTime) -> AppealableOut:
        def appeal(a: Appeal | None) -> AppealOut | None:
            return AppealOut.of(a, clock) if a is not None else None

        return cls(
            flags=[
                AppealableFlagOut(
                    flag_id=f.flag.id,
                    kind=f.flag.kind,
                    status=f.flag.status.value,
                    raised_at=f.flag.created_at,
                    raised_at_local=clock.format(f.flag.created_at),
                    appeal=appeal(f.appeal),
                )
                for f in found.flags
            ],
            failures=[
                AppealableFailureOut(
                    subject=f.subject.value,
                    chain_id=f.chain_id,
                    seq=f.seq,
                    at=f.at,
                    at_local=clock.format(f.at),
                    verdict=f.verdict,
                    course_id=f.course_id,
                    appeal=appeal(f.appeal),
                )
                for f in found.failures
            ],
        )
