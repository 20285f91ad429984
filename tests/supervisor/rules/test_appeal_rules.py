"""Appeals in the rules: an upheld appeal on a failed check credits back at most the
interval the failure stopped, through the one crediting rule."""

from __future__ import annotations

from datetime import timedelta

from supervisor.ledger import appeals as ae
from supervisor.ledger.events import CheckMissed, Event, StateChanged
from supervisor.rules.appeals import credited_back, overrides, summarise_appeal
from supervisor.rules.crediting import credit
from tests.supervisor.rules.test_crediting import GAP, T0, check, start


def _seq(events: list[Event]) -> list[tuple[int, Event]]:
    return list(enumerate(events, start=1))


def test_an_overturned_failure_credits_the_interval_it_stopped() -> None:
    # passes at 0, 5; fails at 10; passes again at 14, 19.
    chain = [start(), check(0, True), check(5, True), check(10, False), check(14, True),
             check(19, True)]  # fmt: skip
    before = credit(chain, GAP).credited_seconds
    assert before == (5 + 5) * 60
    after = credit(credited_back(_seq(chain), {4}), GAP).credited_seconds
    # The stopped interval 5 -> 14 comes back, nothing more.
    assert after - before == 9 * 60
    # An override on a passed check or on another event changes nothing.
    assert credit(credited_back(_seq(chain), {1, 3}), GAP).credited_seconds == before


def test_never_beyond_the_rule_pauses_other_failures_and_the_gap() -> None:
    paused = StateChanged("active", "paused", "page_hidden", T0 + timedelta(minutes=11))
    resumed = StateChanged("paused", "active", "identity_check_passed", T0 + timedelta(minutes=30))
    chain = [start(), check(0, True), check(10, False), paused, resumed, check(35, True)]
    before = credit(chain, GAP).credited_seconds
    after = credit(credited_back(_seq(chain), {3}), GAP).credited_seconds
    assert after - before == 10 * 60  # up to the failure; the pause still stops the clock
    # A gap longer than the rule's maximum is not credited, appeal or not.
    long = [start(), check(0, True), check(20, False), check(40, True)]
    assert credit(credited_back(_seq(long), {3}), GAP).credited_seconds == 0
    # Two failures in a row: overturning the first credits only up to the second.
    two = [start(), check(0, True), check(5, False), check(8, False), check(12, True)]
    assert credit(credited_back(_seq(two), {3}), GAP).credited_seconds == 5 * 60


def test_a_missed_check_counts_at_the_moment_it_was_asked_for() -> None:
    missed = CheckMissed("m", "presence", T0 + timedelta(minutes=6), T0 + timedelta(minutes=8),
                         "no_frame")  # fmt: skip
    chain = [start(), check(0, True), missed, check(10, True)]
    assert credit(chain, GAP).credited_seconds == 0
    assert credit(credited_back(_seq(chain), {3}), GAP).credited_seconds == 10 * 60


def test_only_upheld_appeals_on_checks_override() -> None:
    def chain(upheld: bool | None, subject: str = "check") -> list[Event]:
        filed = ae.AppealFiled(1, 7, subject, "camera broke", T0, None, "session:s", 4)
        if subject == "flag":
            filed = ae.AppealFiled(1, 7, subject, "not me", T0, 3)
        if upheld is None:
            return [filed]
        return [filed, ae.AppealDecided(1, upheld, "note", "bureau:1", T0)]

    summaries = [summarise_appeal(chain(u)) for u in (None, False, True)]
    assert [s.status for s in summaries if s] == ["open", "dismissed", "upheld"]
    assert overrides(s for s in summaries if s) == {"session:s": frozenset({4})}
    flag = summarise_appeal(chain(True, "flag"))
    assert flag is not None and overrides([flag]) == {}
    assert summarise_appeal([]) is None
