"""Bodies of claim review (`/api/v1/submitted-claims`, `/claim-draws`, `/claim-payments`,
`/public/claim-notices`)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from storage.types import ClaimLine, ClaimObjection, PaymentExport
from supervisor.api.schemas.common import In
from supervisor.subsidy.claims import ClaimDetail, ClaimView, DrawView, Notice, NoticeLine


class SubmitIn(In):
    institution_id: int = Field(ge=1)
    month: str | None = Field(
        None, pattern=r"^\d{4}-\d{2}$", description="YYYY-MM in `subsidy.timezone`."
    )
    from_: datetime | None = Field(None, alias="from", description="Period start (aware).")
    until: datetime | None = Field(None, description="Period end, exclusive (aware).")
    course_id: int | None = Field(None, ge=1, description="Only this course's learners.")


class ChainRefOut(BaseModel):
    chain_id: str
    seq: int
    hash: str


class LineOut(BaseModel):
    line_no: int
    learner_id: int
    course_id: int
    credited_hours: float
    amount: float
    rejected: bool
    chains: list[ChainRefOut]

    @classmethod
    def of(cls, x: ClaimLine, rejected: frozenset[int]) -> LineOut:
        return cls(
            line_no=x.line_no,
            learner_id=x.learner_id,
            course_id=x.course_id,
            credited_hours=x.credited_hours,
            amount=x.amount,
            rejected=x.learner_id in rejected,
            chains=[ChainRefOut(chain_id=c.chain_id, seq=c.seq, hash=c.hash) for c in x.chains],
        )


class ObjectionOut(BaseModel):
    id: int
    claim_id: int
    learner_id: int | None
    statement_sha256: str
    received_at: datetime
    status: Literal["open", "upheld", "dismissed"]

    @classmethod
    def of(cls, o: ClaimObjection, status: str) -> ObjectionOut:
        return cls(
            id=o.id,
            claim_id=o.claim_id,
            learner_id=o.learner_id,
            statement_sha256=o.statement_sha256,
            received_at=o.received_at,
            status=status,
        )


class ObjectionDetailOut(ObjectionOut):
    statement: str | None = Field(
        description="What the objector wrote; withheld (null) from the institution's "
        "operators, whose claim it is about (objectors are often its learners or staff)."
    )


class ClaimOut(BaseModel):
    id: int
    institution_id: int
    period_start: datetime
    period_end: datetime
    courses: list[int]
    learners: int
    amount: float = Field(description="Claimed at submission (yuan).")
    lines_sha256: str
    submitted_by: str
    submitted_at: datetime
    status: Literal["submitted", "verified", "approved", "rejected", "paid"]
    sampled_by: str | None = Field(description="The draw that sampled it for verification.")
    verdict: str | None
    amount_approved: float | None
    notice_from: datetime | None
    notice_until: datetime | None
    open_objections: int
    rejected_learners: list[int]
    paid_export: str | None

    @classmethod
    def of(cls, v: ClaimView) -> ClaimOut:
        c, s = v.claim, v.state
        return cls(
            id=c.id,
            institution_id=c.institution_id,
            period_start=c.period_start,
            period_end=c.period_end,
            courses=list(c.courses),
            learners=c.learners,
            amount=c.amount,
            lines_sha256=c.lines_sha256,
            submitted_by=c.submitted_by,
            submitted_at=c.submitted_at,
            status=v.status,
            sampled_by=v.sampled_by,
            verdict=s.verified.verdict if s.verified else None,
            amount_approved=s.decided.amount_approved if s.decided else None,
            notice_from=s.notice.notice_from if s.notice else None,
            notice_until=s.notice.notice_until if s.notice else None,
            open_objections=len(s.open_objections),
            rejected_learners=sorted(s.rejected),
            paid_export=v.paid_export,
        )


def objection_status(d: ClaimDetail, objection_id: int) -> str:
    for o in d.view.state.objections:
        if o.received.objection_id == objection_id:
            if o.decided is None:
                return "open"
            return "upheld" if o.decided.upheld else "dismissed"
    return "open"


class ClaimDetailOut(ClaimOut):
    payable: float = Field(description="The lines still in, if approved (yuan).")
    lines: list[LineOut]
    objections: list[ObjectionDetailOut]
    chain_broken: list[int] = Field(
        default_factory=list,
        description="Learners rejected by this request because a chain their line rests on "
        "is no longer intact (`chain_broken`).",
    )

    @classmethod
    def of_detail(
        cls, d: ClaimDetail, broken: list[int] | None = None, statements: bool = True
    ) -> ClaimDetailOut:
        base = ClaimOut.of(d.view)
        rejected = d.view.state.rejected
        return cls(
            **base.model_dump(),
            payable=d.payable,
            lines=[LineOut.of(x, rejected) for x in d.lines],
            objections=[
                ObjectionDetailOut(
                    **ObjectionOut.of(o, objection_status(d, o.id)).model_dump(),
                    statement=o.statement if statements else None,
                )
                for o in d.objections
            ],
            chain_broken=broken or [],
        )


class VerifyIn(In):
    verdict: Literal["verified", "irregular"]
    note: str = Field("", max_length=2000)
    rejected_learners: list[int] = Field(default_factory=list, max_length=100_000)


class DecideIn(In):
    status: Literal["approved", "rejected"]
    note: str = Field("", max_length=2000)


class ObjectionDecisionIn(In):
    upheld: bool
    note: str = Field("", max_length=2000)


class DrawIn(In):
    from_: datetime = Field(alias="from")
    until: datetime
    base_rate: float | None = Field(
        None, ge=0, le=1, description="Default: `subsidy.claim_sample_rate`."
    )
    seed: str | None = Field(None, min_length=1, max_length=128, description="Default: random.")


class DrawOut(BaseModel):
    draw_id: str
    period_start: datetime
    period_end: datetime
    seed: str
    base_rate: float
    population: list[int]
    rates: list[float]
    sampled: list[int]
    drawn_by: str
    at: datetime
    reproduced: bool = Field(
        description="Redrawn from its seed, population and rates: same sample."
    )

    @classmethod
    def of(cls, d: DrawView) -> DrawOut:
        e = d.event
        return cls(
            draw_id=e.draw_id,
            period_start=e.period_start,
            period_end=e.period_end,
            seed=e.seed,
            base_rate=e.base_rate,
            population=list(e.population),
            rates=list(e.rates),
            sampled=list(e.sampled),
            drawn_by=e.drawn_by,
            at=e.at,
            reproduced=d.reproduced,
        )


class PaymentIn(In):
    claim_ids: list[int] | None = Field(
        None, max_length=10_000, description="Default: every claim ready to pay."
    )


class PaymentExportOut(BaseModel):
    export_id: str
    created_at: datetime
    created_by: str
    claims: int
    amount: float

    @classmethod
    def of(cls, e: PaymentExport) -> PaymentExportOut:
        return cls(
            export_id=e.export_id,
            created_at=e.created_at,
            created_by=e.created_by,
            claims=e.claims,
            amount=e.amount,
        )


class NoticeLineOut(BaseModel):
    learner_id: int
    name: str = Field(description="Masked: the first character only.")
    id_number: str = Field(description="Masked: 1101**********123X.")
    course_id: int
    course_name: str
    credited_hours: float
    amount: float

    @classmethod
    def of(cls, x: NoticeLine) -> NoticeLineOut:
        return cls(
            learner_id=x.learner_id,
            name=x.name_masked,
            id_number=x.id_number_masked,
            course_id=x.course_id,
            course_name=x.course_name,
            credited_hours=x.credited_hours,
            amount=x.amount,
        )


class NoticeOut(BaseModel):
    claim_id: int
    institution_id: int
    institution: str
    period_start: datetime
    period_end: datetime
    notice_from: datetime
    notice_until: datetime
    amount: float
    lines: list[NoticeLineOut]

    @classmethod
    def of(cls, n: Notice) -> NoticeOut:
        return cls(
            claim_id=n.claim.id,
            institution_id=n.claim.institution_id,
            institution=n.institution,
            period_start=n.claim.period_start,
            period_end=n.claim.period_end,
            notice_from=n.notice_from,
            notice_until=n.notice_until,
            amount=n.amount,
            lines=[NoticeLineOut.of(x) for x in n.lines],
        )


class ObjectionIn(In):
    statement: str = Field(min_length=1, max_length=2000)
    learner_id: int | None = Field(None, ge=1, description="The learner's line objected to.")


class ObjectionReceivedOut(BaseModel):
    objection_id: int
    claim_id: int
    statement_sha256: str
    received_at: datetime
