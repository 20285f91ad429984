"""The one state machine of an online study session, and its view folded from the ledger.

A session is `active` (the clock may run), `paused` (it may not, until an identity
check passes) or `ended`. Every change of state is a ledger event made here and
nowhere else, by the worker that records a check, by live supervision and by the
still-frame path alike:

    start                        -> active          (session_started, with the mode named
                                                     at sign-in)
    active|paused --mode(m)-->      unchanged       (supervision_mode_changed, when the page
                                                     is supervised another way)
    active  --check passed-->       active          (the clock runs between passed checks)
    active  --check failed-->       active          (the clock stops until a check passes;
                                                     live supervision opens a response window)
    active  --pause(reason)-->      paused          (window expired, disconnected, shutdown)
    paused  --identity passed-->    active          (state_changed identity_check_passed)
    active|paused --end(reason)-->  ended           (session_ended)

Anything asked of an ended session is an `IllegalTransition`; a pause of a paused
session changes nothing (None).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from storage.types import LedgerEvent
from supervisor.ledger import codec
from supervisor.ledger import events as ev
from supervisor.rules.crediting import CreditClock
from verification.types import CheckKind


class State(StrEnum):
    active = "active"
    paused = "paused"
    ended = "ended"


# Why a session paused, other than a failed check (`check_failed:<verdict>`).
WINDOW_EXPIRED = "response_window_expired"
HEARTBEAT_LOST = "heartbeat_lost"
# The page went to the background (screen locked, another app or tab in front): it
# says so itself, and the session pauses until it comes back and an identity check passes.
PAGE_HIDDEN = "page_hidden"
SERVER_SHUTDOWN = "server_shutdown"
RESUMED_BY_IDENTITY = "identity_check_passed"


class IllegalTransition(Exception):
    """A transition the state machine does not allow (today: anything after the end)."""

    def __init__(self, state: State, transition: str) -> None:
        super().__init__(f"a session that is {state.value} cannot {transition}")
        self.state = state
        self.transition = transition


def _open(state: State, transition: str) -> None:
    if state is State.ended:
        raise IllegalTransition(state, transition)


def start(
    session_id: str, learner_id: int, course_id: int, institution_id: int, mode: str, at: datetime
) -> ev.SessionStarted:
    """The first event of a session, which is then active."""
    return ev.SessionStarted(session_id, learner_id, course_id, institution_id, mode, at)


def after_check(state: State, check: ev.CheckRecorded) -> ev.StateChanged | None:
    """The change of state a recorded check causes, if any: a passed identity check
    resumes a paused session."""
    _open(state, "record a check")
    if check.passed and state is State.paused and check.check_kind == CheckKind.identity.value:
        return ev.StateChanged(
            State.paused.value, State.active.value, RESUMED_BY_IDENTITY, check.at
        )
    return None


def pause(state: State, reason: str, at: datetime) -> ev.StateChanged | None:
    """Stop the clock (a response window expired, the page went away, the service
    stops); None when the session is already paused."""
    _open(state, "pause")
    if state is State.paused:
        return None
    return ev.StateChanged(State.active.value, State.paused.value, reason, at)


def end(state: State, reason: str, at: datetime) -> ev.SessionEnded:
    """End the session (learner, failed_windows, consent_withdrawn, abandoned, ...)."""
    _open(state, "end")
    return ev.SessionEnded(reason, at)


def change_mode(
    state: State, current: str, mode: str, at: datetime
) -> ev.SupervisionModeChanged | None:
    """The page is supervised over `mode` ("webrtc" or "upload"); None when that is
    already the session's mode."""
    _open(state, "change its mode")
    if mode == current:
        return None
    return ev.SupervisionModeChanged(current, mode, at)


def record_missed(state: State, missed: ev.CheckMissed) -> ev.CheckMissed:
    """A check nobody answered is recorded as it is; it changes no state itself."""
    _open(state, "record a missed check")
    return missed


# -- the session's view, folded from its chain -----------------------------------------


@dataclass(frozen=True, slots=True)
class SessionState:
    session_id: str
    learner_id: int
    course_id: int
    institution_id: int
    mode: str  # how the page is supervised: at sign-in, then as last changed
    state: State
    started_at: datetime
    ended_at: datetime | None
    end_reason: str | None
    checks: int
    last_check: ev.CheckRecorded | None
    consecutive_failures: int


class SessionView:
    """A session's state and credited time, folded from its chain as it grows.

    `fold` over the whole chain gives the same values; the live service keeps one
    view per session and applies only the events appended since it last looked
    (`apply` skips what it has seen, so two overlapping reads applied in either order
    leave the same view)."""

    __slots__ = (
        "seq",
        "start",
        "mode",
        "state",
        "ended_at",
        "end_reason",
        "checks",
        "last",
        "failures",
        "identity_passed_at",
        "clock",
    )

    def __init__(self, max_gap: timedelta) -> None:
        self.seq = 0  # the last seq applied
        self.start: ev.SessionStarted | None = None
        self.mode: str | None = None
        self.state = State.active
        self.ended_at: datetime | None = None
        self.end_reason: str | None = None
        self.checks = 0
        self.last: ev.CheckRecorded | None = None
        self.failures = 0
        self.identity_passed_at: datetime | None = None  # the latest passed identity check
        self.clock = CreditClock(max_gap, keep_intervals=False)

    def feed(self, e: ev.Event) -> None:
        if isinstance(e, ev.SessionStarted):
            if self.start is None:
                self.start = e
                self.mode = e.mode
        elif isinstance(e, ev.SupervisionModeChanged):
            self.mode = e.to_mode
        elif isinstance(e, ev.CheckRecorded):
            self.checks += 1
            self.last = e
            self.failures = 0 if e.passed else self.failures + 1
            if e.passed and e.check_kind == CheckKind.identity.value:
                self.identity_passed_at = e.at
        elif isinstance(e, ev.StateChanged):
            self.state = State(e.to_state)
        elif isinstance(e, ev.SessionEnded):
            self.state, self.ended_at, self.end_reason = State.ended, e.at, e.reason
        self.clock.feed(e)

    def apply(self, stored: Sequence[LedgerEvent]) -> None:
        """Feed stored events of the chain that come after `seq`, in seq order."""
        for s in stored:
            if s.seq <= self.seq:
                continue
            if s.seq != self.seq + 1:
                raise ValueError(f"events of {s.chain_id} skip from seq {self.seq} to {s.seq}")
            event = codec.decode(s)
            if event is not None:
                self.feed(event)
            self.seq = s.seq

    def snapshot(self) -> SessionState:
        start = self.start
        if start is None:
            raise ValueError("a session chain must begin with session_started")
        return SessionState(
            start.session_id,
            start.learner_id,
            start.course_id,
            start.institution_id,
            self.mode or start.mode,
            self.state,
            start.at,
            self.ended_at,
            self.end_reason,
            self.checks,
            self.last,
            self.failures,
        )


def fold(events: Sequence[ev.Event]) -> SessionState:
    """The state of a session from its events, in ledger order."""
    view = SessionView(timedelta(0))
    for e in events:
        view.feed(e)
    return view.snapshot()


class SessionViews:
    """Views of the sessions a process is working on, least recently used out.

    `refresh` reads only the events appended after a view's last seq (by any
    process), so it stays exact while costing one small indexed read."""

    def __init__(
        self,
        read_after: Callable[[str, int], Sequence[LedgerEvent]],
        max_gap: timedelta,
        size: int = 10_000,
    ) -> None:
        self._read_after = read_after
        self._max_gap = max_gap
        self._size = size
        self._views: OrderedDict[str, SessionView] = OrderedDict()

    def _get(self, chain_id: str) -> SessionView:
        view = self._views.pop(chain_id, None) or SessionView(self._max_gap)
        self._views[chain_id] = view
        while len(self._views) > self._size:
            self._views.popitem(last=False)
        return view

    def refresh(self, chain_id: str) -> SessionView:
        """The chain's view, brought up to date (blocking: one database read)."""
        view = self._get(chain_id)
        view.apply(self._read_after(chain_id, view.seq))
        return view

    async def refresh_async(
        self, chain_id: str, run: Callable[..., Awaitable[Sequence[LedgerEvent]]]
    ) -> SessionView:
        """`refresh` with the read run by `run` (off the event loop); applied on the loop."""
        view = self._get(chain_id)
        view.apply(await run(self._read_after, chain_id, view.seq))
        return view

    def forget(self, chain_id: str) -> None:
        self._views.pop(chain_id, None)
