"""Languages: every message in both languages (server catalogue and the scripts'
JSON), the request's language chosen as documented, every refusal reason with a
message, advice in step with `verification/`, and times for people in the zone."""

from __future__ import annotations

import ast
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from supervisor.api.reasons import REASON_MESSAGES
from supervisor.i18n import Language, LocalTime, choose, translator
from supervisor.i18n.advice import ADVICE, PROMPTS
from supervisor.i18n.catalogue import po_path
from supervisor.i18n.languages import from_accept_language
from supervisor.web import STATIC_DIR, TEMPLATES_DIR
from verification.types import ChallengeKind, QualityIssue

ROOT = Path(__file__).resolve().parents[2]
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}


def _extracted() -> set[str]:
    """Every message id in the code and the templates, as `make messages` finds them."""
    method_map = [("supervisor/**.py", "python"), ("supervisor/web/templates/**.html", "jinja2")]
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, keywords=KEYWORDS
    ):
        found.update([message] if isinstance(message, str) else [m for m in message if m])
    return found


def test_every_server_message_has_a_chinese_translation_and_none_is_stale() -> None:
    with po_path(Language.zh_CN).open("rb") as fh:
        catalogue = read_po(fh)
    translated = {m.id: m for m in catalogue if m.id}
    extracted = _extracted()
    assert len(extracted) > 300
    missing = sorted(extracted - set(translated))
    assert not missing, f"not in messages.po (run `make messages`): {missing}"
    untranslated = sorted(i for i, m in translated.items() if not m.string or m.fuzzy)
    assert not untranslated, f"no Chinese yet: {untranslated}"
    stale = sorted(set(translated) - extracted)
    assert not stale, f"in messages.po but no longer in the code: {stale}"
    # Placeholders survive translation (a lost one would show a raw `%(x)s` or fail).
    for i, m in translated.items():
        for pattern in (r"%\(\w+\)s", r"\{\w+\}"):
            assert sorted(re.findall(pattern, i)) == sorted(re.findall(pattern, m.string)), i


def test_the_scripts_messages_have_the_same_keys_in_both_languages() -> None:
    en = json.loads((STATIC_DIR / "i18n" / "en.json").read_text(encoding="utf-8"))
    zh = json.loads((STATIC_DIR / "i18n" / "zh-CN.json").read_text(encoding="utf-8"))
    assert set(en) == set(zh) and len(en) > 40
    assert all(v.strip() for v in [*en.values(), *zh.values()])
    for key in en:
        assert sorted(re.findall(r"\{\w+\}", en[key])) == sorted(re.findall(r"\{\w+\}", zh[key]))
    # Every key a script asks for literally exists.
    for script in ("inspect.js", "operator.js", "learner.js"):
        js = (STATIC_DIR / script).read_text(encoding="utf-8")
        used = set(re.findall(r"\bt\(\"([a-z_.]+[a-z_])\"", js))
        assert used and used <= set(en), f"{script}: {sorted(used - set(en))}"
    # The learner's page names its words in data-i18n attributes of its template.
    page = (TEMPLATES_DIR / "learner.html").read_text(encoding="utf-8")
    named = set(re.findall(r'data-i18n="([a-z_.]+)"', page))
    assert named and named <= set(en), sorted(named - set(en))
    # Codes the learner's page words by prefix: every verdict a check can end in, the
    # reasons a session pauses or ends for.
    for verdict in ("no_face", "multiple_faces", "low_quality", "mismatch", "spoof",
                    "challenge_failed", "challenge_timed_out", "missed"):  # fmt: skip
        assert f"learner.failed.{verdict}" in en, verdict
    for note in ("page_hidden", "heartbeat_lost", "response_window_expired", "server_shutdown"):
        assert f"learner.paused.{note}" in en, note
    for reason in ("learner", "staff", "failed_windows", "disconnected", "consent_withdrawn",
                   "abandoned"):  # fmt: skip
        assert f"learner.ended.{reason}" in en, reason
    # Codes the scripts name by prefix (`t(\`flag.${kind}\`)`) are all there too.
    for issue in QualityIssue:
        assert f"advice.{issue.value}" in en
    for kind in ChallengeKind:
        assert f"challenge.{kind.value}" in en


def _raised_reasons() -> set[str]:
    """Every reason code written as a literal in the service's code."""
    found: set[str] = set()
    for path in (ROOT / "supervisor").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "reason":
                value = node.value
            elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "reason" for t in node.targets
            ):
                value = node.value
            else:
                continue
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                found.add(value.value)
    return found


def test_every_refusal_reason_has_a_message_for_people() -> None:
    raised = _raised_reasons()
    assert {"rules_frozen", "csrf", "roster_frozen"} <= raised
    missing = sorted(raised - set(REASON_MESSAGES) - {"reason"})
    assert not missing, f"reasons without a message in supervisor/api/reasons.py: {missing}"


def test_advice_and_prompts_follow_verification_by_code() -> None:
    assert {i: i.advice for i in QualityIssue} == ADVICE
    assert {k: k.prompt for k in ChallengeKind} == PROMPTS
    zh = translator(Language.zh_CN)
    assert zh.gettext(ADVICE[QualityIssue.too_dark]) == "光线太暗，请开灯或面向窗户。"
    assert translator(Language.en).gettext(PROMPTS[ChallengeKind.look_up]) == "Look up."


@pytest.mark.parametrize(
    ("query", "cookie", "header", "expected"),
    [
        (None, None, None, Language.zh_CN),
        (None, None, "en-US,en;q=0.9", Language.en),
        (None, None, "fr-FR, en;q=0.5, zh;q=0.8", Language.zh_CN),
        (None, None, "zh-TW", Language.zh_CN),
        (None, None, "de, *;q=0.1", Language.zh_CN),
        (None, "en", "zh-CN", Language.en),
        ("zh-CN", "en", "en", Language.zh_CN),
        ("xx", "en", None, Language.en),
        (None, "<script>", "en;q=bad, zh;q=0.2", Language.zh_CN),
    ],
)
def test_the_request_language_follows_switch_cookie_header_then_default(
    query: str | None, cookie: str | None, header: str | None, expected: Language
) -> None:
    assert choose(query, cookie, header, Language.zh_CN) is expected


def test_accept_language_quality_values_and_order() -> None:
    assert from_accept_language("en;q=0.4, zh-CN;q=0.6") is Language.zh_CN
    assert from_accept_language("en, zh") is Language.en
    assert from_accept_language("en;q=0, zh;q=0.1") is Language.zh_CN
    assert from_accept_language("") is None


def test_times_for_people_are_local_with_the_offset() -> None:
    clock = LocalTime("Asia/Shanghai")
    at = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    assert clock.format(at) == "2026-11-30 16:00 (UTC+8)"
    assert clock.format(at, seconds=True, offset=False) == "2026-11-30 16:00:00"
    assert clock.date(datetime(2026, 11, 30, 17, 0, tzinfo=UTC)) == "2026-12-01"
    assert clock.wall(at) == datetime(2026, 11, 30, 16, 0)
    assert clock.zone_label(at) == "UTC+8" and clock.format(None) == ""
    india = timezone(timedelta(hours=5, minutes=30))
    assert LocalTime("Asia/Kolkata").format(at.astimezone(india)) == "2026-11-30 13:30 (UTC+5:30)"
    assert LocalTime("Europe/Berlin").zone_label(at) == "Europe/Berlin"  # summer time
    with pytest.raises(ValueError):
        clock.format(datetime(2026, 11, 30, 8, 0))
