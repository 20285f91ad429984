"""Spot checks: a reproducible random draw of an institution's sessions, and verdicts.

The draw, with its seed, is a ledger event (`ledger.inspection`): anyone can
recompute the sample from the seed and the population of the period and get the
same sessions. A later change to that population shows as `reproduced = False`.
"""

from __future__ import annotations

import hashlib
import random
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from storage.types import LedgerEvent, Role
from supervisor.auth import Principal, require_role
from supervisor.context import Context
from supervisor.errors import InvalidInput, UnknownId
from supervisor.inspect.access import Workspace
from supervisor.ledger import codec
from supervisor.ledger import inspection as iev


def draw_sample(population: Sequence[str], seed: str, size: int) -> list[str]:
    """The spot-check sample: same population (any order), seed and size -> same draw."""
    ordered = sorted(population)
    rng = random.Random(hashlib.sha256(seed.encode("utf-8")).digest())
    return sorted(rng.sample(ordered, min(size, len(ordered))))


def population_digest(population: Sequence[str]) -> str:
    """SHA-256 (hex) of the sorted session ids, one a line."""
    return hashlib.sha256("\n".join(sorted(population)).encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Draw:
    event: iev.SpotCheckDrawn
    verdicts: dict[str, iev.SpotCheckVerdict]
    reproduced: bool


class SpotChecks:
    def __init__(self, ctx: Context, workspace: Workspace) -> None:
        self.ctx = ctx
        self.storage = ctx.storage
        self.workspace = workspace

    async def draw(
        self,
        p: Principal,
        institution_id: int,
        period_start: datetime,
        period_end: datetime,
        size: int,
        seed: str | None,
    ) -> iev.SpotCheckDrawn:
        require_role(p, Role.admin, Role.inspector)
        if period_end <= period_start:
            raise InvalidInput("the period must end after it starts", reason="bad_period")
        limit = self.ctx.settings.inspection.spot_check_max_sample
        if not 1 <= size <= limit:
            raise InvalidInput(f"the sample size must be 1..{limit}", reason="bad_sample_size")
        if seed is not None and not (1 <= len(seed) <= 128):
            raise InvalidInput("a seed is 1..128 characters", reason="bad_seed")
        await self.ctx.db(self.storage.registry.get_institution, institution_id)
        seed = seed or secrets.token_hex(16)
        population = await self.ctx.db(self._population, institution_id, period_start, period_end)
        drawn = iev.SpotCheckDrawn(
            draw_id=uuid.uuid4().hex,
            institution_id=institution_id,
            period_start=period_start,
            period_end=period_end,
            seed=seed,
            sample_size=size,
            population=len(population),
            population_sha256=population_digest(population),
            sessions=tuple(draw_sample(population, seed, size)),
            drawn_by=p.actor,
            at=self.ctx.clock(),
        )
        await self.ctx.append(iev.spot_check_chain(drawn.draw_id), [codec.encode(drawn)])
        await self.workspace.log(
            p, "spot_check_draw", institution_id=institution_id, detail=drawn.draw_id
        )
        return drawn

    def _population(self, institution_id: int, start: datetime, end: datetime) -> list[str]:
        return sorted(
            s.id
            for s in self.storage.registry.list_sessions(institution_id)
            if start <= s.started_at < end
        )

    async def draws(self, p: Principal) -> list[Draw]:
        require_role(p, Role.admin, Role.inspector)

        def load() -> list[Draw]:
            chains: dict[str, list[LedgerEvent]] = {}
            it = self.storage.ledger.iter_events(
                kinds=[iev.SpotCheckDrawn.KIND, iev.SpotCheckVerdict.KIND]
            )
            for st in it:
                chains.setdefault(st.chain_id, []).append(st)
            out = [self._draw_of(events) for events in chains.values()]
            return sorted(out, key=lambda d: d.event.at, reverse=True)

        return await self.ctx.db(load)

    def _draw_of(self, stored: Sequence[LedgerEvent]) -> Draw:
        drawn: iev.SpotCheckDrawn | None = None
        verdicts: dict[str, iev.SpotCheckVerdict] = {}
        for _, e in codec.decode_all(stored):
            if isinstance(e, iev.SpotCheckDrawn):
                drawn = e
            elif isinstance(e, iev.SpotCheckVerdict):
                verdicts[e.session_id] = e
        if drawn is None:
            raise UnknownId("not a spot-check draw")
        population = self._population(drawn.institution_id, drawn.period_start, drawn.period_end)
        reproduced = (
            population_digest(population) == drawn.population_sha256
            and tuple(draw_sample(population, drawn.seed, drawn.sample_size)) == drawn.sessions
        )
        return Draw(drawn, verdicts, reproduced)

    async def get_draw(self, p: Principal, draw_id: str) -> Draw:
        require_role(p, Role.admin, Role.inspector)
        if not draw_id.isalnum() or len(draw_id) != 32:
            raise UnknownId("unknown draw")

        def load() -> Draw:
            stored = self.storage.ledger.read_chain(iev.spot_check_chain(draw_id))
            if not stored:
                raise UnknownId("unknown draw")
            return self._draw_of(stored)

        return await self.ctx.db(load)

    async def record_verdict(
        self, p: Principal, draw_id: str, session_id: str, verdict: str, note: str
    ) -> iev.SpotCheckVerdict:
        require_role(p, Role.admin, Role.inspector)
        if verdict not in iev.VERDICTS:
            raise InvalidInput("the verdict is regular or irregular", reason="bad_verdict")
        note = note.strip()
        if len(note) > 2000:
            raise InvalidInput("the note is at most 2000 characters", reason="note_too_long")
        if verdict == "irregular" and not note:
            raise InvalidInput("an irregular verdict needs a note", reason="note_required")
        draw = await self.get_draw(p, draw_id)
        if session_id not in draw.event.sessions:
            raise InvalidInput("that session is not in this draw", reason="not_in_draw")
        event = iev.SpotCheckVerdict(
            draw_id=draw_id,
            session_id=session_id,
            verdict=verdict,
            note=note,
            decided_by=p.actor,
            at=self.ctx.clock(),
        )
        await self.ctx.append(iev.spot_check_chain(draw_id), [codec.encode(event)])
        return event
