"""Fraud signals found in the ledger (pure functions of a `Snapshot`).

Each finder returns `Signal`s; `supervisor.subsidy.service.SubsidyService.scan_fraud`
raises a flag for every signal whose `key` has not been flagged before, so a
scan can run again and again. Signals at the check moment (a check frame closer
to another learner's template than to the learner's own) are raised by the
verification worker itself (`supervisor.checks.impostor`); the same face under two
identities at enrolment by the registry (`duplicate_identity`).

- `two_places_online`: two online sessions of one learner overlap in time;
- `two_places_classroom`: a classroom roll call found the learner present while
  an online session of theirs was running;
- `pass_rate_outlier` / `check_timing_outlier`: an institution's check pass rate
  or median time between checks is far from its peers' (robust z-score over
  institutions, median and MAD);
- `odd_hour_burst`: many sessions of one institution started within an hour at
  night (local time of `subsidy.timezone`);
- `replayed_image`: a session whose passed identity checks all have the same
  distance (a real face never gives the same encoding twice; a replayed image does).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from config.settings import SubsidySettings
from supervisor.rules.eligibility import SessionSummary
from supervisor.rules.flags import EvidenceRef


@dataclass(frozen=True, slots=True)
class Signal:
    kind: str
    key: str
    institution_id: int | None
    learner_id: int | None
    other_learner_ids: tuple[int, ...]
    summary: str
    evidence: tuple[EvidenceRef, ...]
    scores: dict[str, Any] = field(default_factory=dict)


def _ref(s: SessionSummary, **scores: Any) -> EvidenceRef:
    chain, seq, hash_ = s.ref if s.ref is not None else (s.chain_id, None, None)
    return EvidenceRef(chain, seq, hash_, None, scores)


def two_places(sessions: Iterable[SessionSummary]) -> list[Signal]:
    """Overlapping online sessions of a learner, and classroom presence during one."""
    out: list[Signal] = []
    by_learner: dict[int, list[SessionSummary]] = defaultdict(list)
    for s in sessions:
        by_learner[s.learner_id].append(s)
    for learner_id, found in sorted(by_learner.items()):
        online = sorted((s for s in found if s.kind == "online"), key=lambda s: s.started_at)
        for i, a in enumerate(online):
            for b in online[i + 1 :]:
                if b.started_at >= a.last_at:
                    break
                overlap = (min(a.last_at, b.last_at) - b.started_at).total_seconds()
                out.append(
                    Signal(
                        "two_places_online",
                        f"two_places_online:{a.chain_id}:{b.chain_id}",
                        a.institution_id,
                        learner_id,
                        (),
                        f"two online sessions of learner {learner_id} overlap by {overlap:.0f} s",
                        (_ref(a), _ref(b)),
                        {"overlap_s": overlap},
                    )
                )
        for c in (s for s in found if s.kind == "classroom"):
            for a in online:
                inside = [t for t in c.present_at if a.started_at <= t <= a.last_at]
                if inside:
                    out.append(
                        Signal(
                            "two_places_classroom",
                            f"two_places_classroom:{a.chain_id}:{c.chain_id}",
                            a.institution_id,
                            learner_id,
                            (),
                            f"learner {learner_id} was found in a classroom {len(inside)} "
                            "time(s) during an online session",
                            (_ref(a), _ref(c, present_during_online=len(inside))),
                            {"roll_calls_present": len(inside)},
                        )
                    )
    return out


def replayed_images(sessions: Iterable[SessionSummary], cfg: SubsidySettings) -> list[Signal]:
    out: list[Signal] = []
    for s in sessions:
        d = s.identity_distances
        if len(d) >= cfg.replay_min_checks and max(d) - min(d) <= cfg.replay_max_spread:
            out.append(
                Signal(
                    "replayed_image",
                    f"replayed_image:{s.chain_id}",
                    s.institution_id,
                    s.learner_id,
                    (),
                    f"{len(d)} passed identity checks of one session all at distance {d[0]:.4f}",
                    (_ref(s, distance=d[0], checks=len(d)),),
                    {"checks": len(d), "distance": d[0], "spread": max(d) - min(d)},
                )
            )
    return out


def _robust_z(values: dict[int, float]) -> dict[int, float]:
    if len(values) < 3:
        return {}
    med = statistics.median(values.values())
    mad = statistics.median(abs(v - med) for v in values.values())
    scale = 1.4826 * mad
    if scale <= 1e-9:
        # Peers agree exactly: anyone away from them by a clear margin is an outlier.
        return {k: (0.0 if abs(v - med) < 1e-9 else float("inf")) for k, v in values.items()}
    return {k: (v - med) / scale for k, v in values.items()}


def institution_patterns(
    sessions: Iterable[SessionSummary], cfg: SubsidySettings, month_key: str
) -> list[Signal]:
    """Pass rates and check timings far from peers; bursts of sessions at night."""
    checks: dict[int, int] = defaultdict(int)
    passed: dict[int, int] = defaultdict(int)
    gaps: dict[int, list[float]] = defaultdict(list)
    night: dict[tuple[int, str], list[SessionSummary]] = defaultdict(list)
    tz = ZoneInfo(cfg.timezone)
    for s in sessions:
        if s.kind != "online":
            continue
        checks[s.institution_id] += s.checks
        passed[s.institution_id] += s.passed_checks
        if s.check_interval_s is not None:
            gaps[s.institution_id].append(s.check_interval_s)
        local = s.started_at.astimezone(tz)
        if cfg.odd_hours_start <= local.hour < cfg.odd_hours_end:
            night[(s.institution_id, local.strftime("%Y-%m-%dT%H"))].append(s)
    out: list[Signal] = []
    rates = {i: passed[i] / n for i, n in checks.items() if n >= cfg.peer_min_checks}
    for inst, z in sorted(_robust_z(rates).items()):
        if abs(z) >= cfg.peer_z_threshold:
            out.append(
                Signal(
                    "pass_rate_outlier",
                    f"pass_rate_outlier:{inst}:{month_key}",
                    inst,
                    None,
                    (),
                    f"check pass rate {rates[inst]:.1%} is far from peer institutions' "
                    f"(robust z {z:+.1f})",
                    (),
                    {"pass_rate": rates[inst], "z": _finite(z), "checks": checks[inst]},
                )
            )
    medians = {i: statistics.median(v) for i, v in gaps.items() if len(v) >= cfg.peer_min_sessions}
    for inst, z in sorted(_robust_z(medians).items()):
        if abs(z) >= cfg.peer_z_threshold:
            out.append(
                Signal(
                    "check_timing_outlier",
                    f"check_timing_outlier:{inst}:{month_key}",
                    inst,
                    None,
                    (),
                    f"median time between checks {medians[inst]:.0f} s is far from peer "
                    f"institutions' (robust z {z:+.1f})",
                    (),
                    {"median_interval_s": medians[inst], "z": _finite(z)},
                )
            )
    for (inst, hour), found in sorted(night.items(), key=lambda kv: kv[0]):
        if len(found) >= cfg.burst_min_sessions:
            found = sorted(found, key=lambda s: s.started_at)
            out.append(
                Signal(
                    "odd_hour_burst",
                    f"odd_hour_burst:{inst}:{hour}",
                    inst,
                    None,
                    (),
                    f"{len(found)} sessions started within the hour {hour}:00 local time",
                    tuple(_ref(s) for s in found[:50]),
                    {"sessions": len(found)},
                )
            )
    return out


def _finite(z: float) -> float:
    return z if abs(z) < 1e9 else (1e9 if z > 0 else -1e9)


def all_signals(
    sessions: list[SessionSummary], cfg: SubsidySettings, month_key: str
) -> list[Signal]:
    return (
        two_places(sessions)
        + replayed_images(sessions, cfg)
        + institution_patterns(sessions, cfg, month_key)
    )
