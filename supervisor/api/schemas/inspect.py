"""Bodies of the inspector's API: search rows, replays, spot checks, seals, access log."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from storage.types import AccessEntry, Seal
from supervisor.api.schemas.common import In, IntegrityOut, IntervalOut
from supervisor.inspect import seals as sl
from supervisor.inspect.replay import Replay
from supervisor.inspect.sealing import Integrity
from supervisor.inspect.search import SearchRow
from supervisor.inspect.spot_checks import Draw
from supervisor.ledger.inspection import SpotCheckDrawn, SpotCheckVerdict


class SearchRowOut(BaseModel):
    kind: str
    id: str
    institution: str
    course: str
    learner_name: str
    learner_masked_id: str = Field(description="Masked ID number (or roster size for a class).")
    started_at: datetime
    ended_at: datetime | None
    outcome: str
    credited_seconds: float | None
    flags: int

    @classmethod
    def of(cls, r: SearchRow) -> SearchRowOut:
        return cls(
            kind=r.kind,
            id=r.id,
            institution=r.institution,
            course=r.course,
            learner_name=r.learner_name,
            learner_masked_id=r.learner_masked_id,
            started_at=r.started_at,
            ended_at=r.ended_at,
            outcome=r.outcome,
            credited_seconds=r.credited_seconds,
            flags=r.flags,
        )


class SealCheckOut(BaseModel):
    state: str
    seal_id: int | None
    sealed_at: datetime | None
    message: str


class ReplayIntegrityOut(BaseModel):
    ok: bool
    chain: IntegrityOut
    seal: SealCheckOut

    @classmethod
    def of(cls, i: Integrity) -> ReplayIntegrityOut:
        return cls(
            ok=i.ok,
            chain=IntegrityOut.of(i.chain),
            seal=SealCheckOut(
                state=i.seal.state,
                seal_id=i.seal.seal_id,
                sealed_at=i.seal.sealed_at,
                message=i.seal.message,
            ),
        )


class ReplayCheckOut(BaseModel):
    seq: int
    at: datetime
    kind: str
    verdict: str
    passed: bool | None
    distance: float | None
    threshold: float | None
    issues: list[str]
    evidence_sha256: str | None
    evidence_status: str
    detail: str


class ReplayItemOut(BaseModel):
    seq: int
    at: datetime | None
    kind: str
    text: str


class ReplayOut(BaseModel):
    kind: str
    title: str
    institution_id: int
    course_id: int
    learner_id: int | None
    learner_masked_id: str | None
    start: datetime
    end: datetime
    credited_seconds: float | None
    intervals: list[IntervalOut]
    checks: list[ReplayCheckOut]
    items: list[ReplayItemOut]
    integrity: ReplayIntegrityOut

    @classmethod
    def of(cls, r: Replay) -> ReplayOut:
        from supervisor.registry.identity import mask_id_number

        return cls(
            kind=r.kind,
            title=r.title,
            institution_id=r.institution.id,
            course_id=r.course.id,
            learner_id=r.learner.id if r.learner else None,
            learner_masked_id=mask_id_number(r.learner.id_number) if r.learner else None,
            start=r.start,
            end=r.end,
            credited_seconds=r.credit.credited_seconds if r.credit else None,
            intervals=[
                IntervalOut(start=i.start, end=i.end, seconds=i.seconds)
                for i in (r.credit.intervals if r.credit else ())
            ],
            checks=[
                ReplayCheckOut(
                    seq=c.seq,
                    at=c.at,
                    kind=c.kind,
                    verdict=c.verdict,
                    passed=c.passed,
                    distance=c.distance,
                    threshold=c.threshold,
                    issues=list(c.issues),
                    evidence_sha256=c.evidence_sha256,
                    evidence_status=c.evidence_status,
                    detail=c.detail,
                )
                for c in r.checks
            ],
            items=[ReplayItemOut(seq=i.seq, at=i.at, kind=i.kind, text=i.text) for i in r.items],
            integrity=ReplayIntegrityOut.of(r.integrity),
        )


class DrawIn(In):
    institution_id: int = Field(ge=1)
    period_start: datetime
    period_end: datetime
    size: int = Field(ge=1, le=1000)
    seed: str | None = Field(None, min_length=1, max_length=128)


class VerdictIn(In):
    session_id: str = Field(min_length=1, max_length=64)
    verdict: Literal["regular", "irregular"]
    note: str = Field("", max_length=2000)


class VerdictOut(BaseModel):
    draw_id: str
    session_id: str
    verdict: str
    note: str
    decided_by: str
    at: datetime

    @classmethod
    def of(cls, v: SpotCheckVerdict) -> VerdictOut:
        return cls(
            draw_id=v.draw_id,
            session_id=v.session_id,
            verdict=v.verdict,
            note=v.note,
            decided_by=v.decided_by,
            at=v.at,
        )


class DrawOut(BaseModel):
    draw_id: str
    institution_id: int
    period_start: datetime
    period_end: datetime
    seed: str
    sample_size: int
    population: int
    population_sha256: str
    sessions: list[str]
    drawn_by: str
    at: datetime
    reproduced: bool | None = Field(
        None, description="Redrawing from the recorded seed over today's records gives the same."
    )
    verdicts: list[VerdictOut] = []

    @classmethod
    def of(cls, d: SpotCheckDrawn, draw: Draw | None = None) -> DrawOut:
        return cls(
            draw_id=d.draw_id,
            institution_id=d.institution_id,
            period_start=d.period_start,
            period_end=d.period_end,
            seed=d.seed,
            sample_size=d.sample_size,
            population=d.population,
            population_sha256=d.population_sha256,
            sessions=list(d.sessions),
            drawn_by=d.drawn_by,
            at=d.at,
            reproduced=draw.reproduced if draw else None,
            verdicts=[VerdictOut.of(v) for v in draw.verdicts.values()] if draw else [],
        )


def _broken_in(s: Seal) -> int:
    try:
        value = sl.statement_fields(s.statement).get("broken", 0)
    except ValueError:
        return 0
    return value if isinstance(value, int) else 0


class SealOut(BaseModel):
    id: int
    sealed_at: datetime
    chains: int
    broken: int = Field(
        0,
        description="Chains this seal found broken and recorded as broken (format 2; "
        "0 for seals of format 1, made before seals verified chains).",
    )
    root: str
    statement: str = Field(description="The canonical JSON that `signature` signs.")
    signature: str = Field(description="Hex Ed25519 signature of `statement`.")
    public_key: str = Field(description="Hex of the raw 32-byte Ed25519 public key.")
    public_key_pem: str
    key_fingerprint: str

    @classmethod
    def of(cls, s: Seal) -> SealOut:
        return cls(
            id=s.id,
            sealed_at=s.sealed_at,
            chains=s.chains,
            broken=_broken_in(s),
            root=s.root,
            statement=s.statement,
            signature=s.signature,
            public_key=s.public_key,
            public_key_pem=sl.public_key_pem(s.public_key),
            key_fingerprint=sl.fingerprint(s.public_key),
        )


class PublicKeyOut(BaseModel):
    public_key: str
    public_key_pem: str
    key_fingerprint: str


class ProofStepOut(BaseModel):
    side: str
    hash: str


class ProofOut(BaseModel):
    seal_id: int
    chain_id: str
    seq: int
    hash: str
    broken: int | None = Field(
        None,
        description="The seal recorded the chain broken at this seq; `seq` and `hash` "
        "are then its last head vouched for by an earlier seal (seq 0: none).",
    )
    root: str
    proof: list[ProofStepOut]
    chain_matches: bool = Field(description="The chain still holds the sealed head.")
    problem: str | None


class AccessEntryOut(BaseModel):
    id: int
    at: datetime
    actor: str
    role: str
    action: str
    institution_id: int | None
    learner_id: int | None
    session_id: str | None
    class_id: int | None
    detail: str

    @classmethod
    def of(cls, a: AccessEntry) -> AccessEntryOut:
        return cls(
            id=a.id,
            at=a.at,
            actor=a.actor,
            role=a.role,
            action=a.action,
            institution_id=a.institution_id,
            learner_id=a.learner_id,
            session_id=a.session_id,
            class_id=a.class_id,
            detail=a.detail,
        )
