"""Ledger events of learners' appeals (issue "The bureau's month").

One chain per appeal, `appeal:<id>`: `appeal_filed` by the learner from their own page
(against a flag, a failed check or a missed roll call), then `appeal_decided` by the
bureau or an inspector. An upheld appeal reaches eligibility: on a flag it dismisses
the flag (a `flag_decided` in the flag's chain, naming the appeal); on a check or a
roll call the rules credit the interval that the failure had stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from supervisor.ledger import events as ev


def appeal_chain(appeal_id: int) -> str:
    return f"appeal:{appeal_id}"


APPEAL_SUBJECTS = ("flag", "check", "roll_call")


@dataclass(frozen=True, slots=True)
class AppealFiled(ev.Event):
    """`subject` is one of `APPEAL_SUBJECTS`; a flag is named by `flag_id`, a check or a
    roll call by the chain and seq of its event."""

    KIND: ClassVar[str] = "appeal_filed"
    appeal_id: int
    learner_id: int
    subject: str
    statement: str
    at: datetime
    flag_id: int | None = ev.optional()
    chain_id: str | None = ev.optional()
    seq: int | None = ev.optional()


@dataclass(frozen=True, slots=True)
class AppealDecided(ev.Event):
    KIND: ClassVar[str] = "appeal_decided"
    appeal_id: int
    upheld: bool
    note: str
    decided_by: str
    at: datetime


# The kinds of this module, for `supervisor.ledger.kinds`.
KINDS: tuple[type[ev.Event], ...] = (AppealFiled, AppealDecided)
