"""Event payloads: canonical, round-trip, refusing naive times."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from storage.canonical import canonical_json
from storage.types import LedgerEvent
from supervisor.ledger import codec
from supervisor.ledger import events as ev


def _stored(new: ev.Event) -> LedgerEvent:
    encoded = codec.encode(new)
    return LedgerEvent("c", 1, datetime.now(UTC), encoded.kind, encoded.payload, "0" * 64, "0" * 64)


def test_check_event_round_trips_exactly() -> None:
    at = datetime(2026, 11, 25, 9, 30, 1, 123456, tzinfo=UTC)
    check = ev.CheckRecorded(
        "id1",
        "identity",
        "scheduled",
        "match",
        True,
        at,
        0.312345678,
        0.53,
        ("too_dark",),
        1,
        3,
        "ab" * 32,
        at,
    )
    encoded = codec.encode(check)
    assert encoded.payload == canonical_json(__import__("json").loads(encoded.payload))
    assert '"at":"2026-11-25T09:30:01.123456Z"' in encoded.payload
    back = codec.decode(_stored(check))
    assert back == ev.CheckRecorded(
        "id1",
        "identity",
        "scheduled",
        "match",
        True,
        at,
        0.312346,
        0.53,
        ("too_dark",),
        1,
        3,
        "ab" * 32,
        at,
    )


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        codec.encode(ev.SessionEnded("learner", datetime(2026, 1, 1)))


def test_unknown_kinds_decode_to_none() -> None:
    stored = LedgerEvent("c", 1, datetime.now(UTC), "from_the_future", "{}", "0" * 64, "0" * 64)
    assert codec.decode(stored) is None


# Payloads written before liveness and challenges became typed records (issue 20): the
# typed events must encode to exactly these bytes, so chains keep verifying and an
# inspector's recomputation is unchanged.
_GOLDEN_WITH_LIVENESS = (
    '{"at":"2026-12-06T08:00:00.123456Z","challenge":{"baseline_ear":0.31,'
    '"baseline_pitch_deg":-2.25,"baseline_yaw_deg":1.5,"face_frames":40,"frames":44,'
    '"kind":"turn_left","min_ear_ratio":0.9,"outcome":"passed","peak_pitch_change_deg":1.0,'
    '"peak_yaw_change_deg":3.0,"reasons":["seen"],"response_s":1.25,'
    '"trough_yaw_change_deg":-18.76543},"check_id":"c1","check_kind":"identity",'
    '"distance":0.41,"evidence_error":null,"evidence_sha256":'
    '"abababababababababababababababababababababababababababababababab","faces":1,"frames":3,'
    '"issues":[],"liveness":{"measures":{"ear_max":0.3,"ear_min":0.21,"elapsed_ms":12.34568,'
    '"face_frames":3,"frames":3,"glare_moved":0.0,"history_matches":0,"iod_px":61.23457,'
    '"motion":0.01235,"nonrigid":0.0105,"pixel_change_max":3.2,"repeat_gap_s":null,'
    '"repeat_mad":null,"sharpness_min":null,"span_s":2.0,"tracked_points":40},'
    '"reasons":["nonrigid_motion"],"verdict":"live"},"passed":true,"purpose":"scheduled",'
    '"scheduled_at":"2026-12-06T08:00:00.123456Z","suspicion":["page_hidden"],'
    '"threshold":0.53,"verdict":"match"}'
)
_GOLDEN_PLAIN = (
    '{"at":"2026-12-06T08:00:00.123456Z","challenge":null,"check_id":"c2",'
    '"check_kind":"presence","distance":null,"evidence_error":null,"evidence_sha256":null,'
    '"faces":0,"frames":3,"issues":["too_dark"],"liveness":null,"passed":false,'
    '"purpose":"retry","scheduled_at":null,"suspicion":[],"threshold":null,'
    '"verdict":"no_face"}'
)


def test_typed_liveness_records_keep_the_bytes_of_earlier_payloads() -> None:
    from supervisor.checks.verdict import challenge_record, liveness_record
    from verification import types as vt

    measures = vt.LivenessMeasures(
        frames=3, face_frames=3, span_s=2.0000012, iod_px=61.234567, sharpness_min=None,
        motion=0.0123456, nonrigid=0.0104999, tracked_points=40, glare_moved=0.0,
        pixel_change_max=3.2, repeat_mad=None, repeat_gap_s=None, history_matches=0,
        ear_min=0.21, ear_max=0.3, elapsed_ms=12.345678,
    )  # fmt: skip
    liveness = vt.LivenessResult(
        vt.LivenessVerdict.live, (vt.LivenessReason.nonrigid_motion,), measures
    )
    challenge = vt.ChallengeResult(
        vt.ChallengeKind.turn_left, vt.ChallengeOutcome.passed, ("seen",), 1.25, 44, 40,
        1.5, -2.25, 0.31, 3.0, -18.7654321, 1.0, 0.9,
    )  # fmt: skip
    at = datetime(2026, 12, 6, 8, 0, 0, 123456, tzinfo=UTC)
    check = ev.CheckRecorded(
        "c1", "identity", "scheduled", "match", True, at, 0.41, 0.53, (), 1, 3, "ab" * 32, at,
        liveness_record(liveness), challenge_record(challenge), ("page_hidden",), None,
    )  # fmt: skip
    assert codec.encode(check).payload == _GOLDEN_WITH_LIVENESS
    plain = ev.CheckRecorded(
        "c2", "presence", "retry", "no_face", False, at, None, None, ("too_dark",), 0, 3, None
    )
    assert codec.encode(plain).payload == _GOLDEN_PLAIN
    # And they read back as the typed records.
    back = codec.decode(_stored(check))
    assert isinstance(back, ev.CheckRecorded) and back == check
    assert back.liveness is not None and back.liveness.measures.nonrigid == 0.0105
    assert back.challenge is not None and back.challenge.trough_yaw_change_deg == -18.76543


def test_capture_times_are_kept_only_where_known() -> None:
    at = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
    base = ev.CheckRecorded("c3", "presence", "scheduled", "present", True, at, None, None,
                            (), 1, 3, None)  # fmt: skip
    assert '"pts"' not in codec.encode(base).payload
    stamped = ev.CheckRecorded(
        "c3", "presence", "scheduled", "present", True, at, None, None, (), 1, 3, None,
        captured_at=at, pts=90_000, time_base="1/90000",
    )  # fmt: skip
    payload = codec.encode(stamped).payload
    assert '"captured_at":"2026-12-06T08:00:00.000000Z"' in payload and '"pts":90000' in payload
    assert codec.decode(_stored(stamped)) == stamped


def test_every_kind_is_registered_once_and_decodes_without_importing_its_wing() -> None:
    import subprocess
    import sys

    # A fresh interpreter that imports only the codec decodes a classroom kind.
    payload = (
        '{"at":"2026-12-06T08:00:00.000000Z","check_id":"r","check_kind":"roll_call",'
        '"distance":null,"evidence_sha256":null,"faces":1,"frames":1,"issues":[],'
        '"passed":true,"purpose":"random","threshold":null,"verdict":"present"}'
    )
    code = (
        "import sys; from supervisor.ledger import codec; "
        "print(type(codec.decode_payload('class_presence', sys.argv[1])).__name__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, payload], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "ClassPresence"
    from supervisor.ledger.kinds import EVENT_TYPES

    assert len(EVENT_TYPES) == len({c for c in EVENT_TYPES.values()})
