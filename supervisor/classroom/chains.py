"""Where a supervision run writes: the class's chain and each learner's chain of the class."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime

from storage.types import LedgerEvent
from supervisor.context import Context
from supervisor.ledger import classroom as ce
from supervisor.ledger import codec
from supervisor.ledger import events as ev


class ClassChains:
    """The chains of one run of a class. Appends to the class's chain are serialised
    in this process (`Context.lock`); a learner's chain has one writer, the run."""

    def __init__(self, ctx: Context, class_id: int, run_id: int) -> None:
        self.ctx = ctx
        self.class_id = class_id
        self.run_id = run_id

    @property
    def chain(self) -> str:
        return ce.class_chain(self.class_id)

    def outage(
        self, at: datetime, reason: str, roll_call_id: str | None, cameras: tuple[int, ...]
    ) -> ce.ClassOutage:
        """The event that stops a learner's class clock."""
        return ce.ClassOutage(
            ce.OBSERVED, ce.OUTAGE, reason, at, self.class_id, self.run_id, roll_call_id, cameras
        )

    async def append_learners(self, events: Mapping[int, Sequence[ev.Event]]) -> None:
        """Append each learner's events to their chain of the class, all at once."""
        await asyncio.gather(
            *(
                self.ctx.append(
                    ce.learner_class_chain(self.class_id, lid), [codec.encode(e) for e in evs]
                )
                for lid, evs in events.items()
                if evs
            )
        )

    async def append_class(self, event: ev.Event) -> LedgerEvent:
        """Append one event to the class's chain; the stored event."""
        async with self.ctx.lock(self.chain):
            (stored,) = await self.ctx.append(self.chain, [codec.encode(event)])
            return stored
