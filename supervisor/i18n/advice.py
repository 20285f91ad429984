"""The learner's advice (quality gates) and challenge prompts in the learner's language.

`verification/` keeps its English texts (`QualityIssue.advice`, `ChallengeKind.prompt`)
and imports nothing of ours; here the same English texts are the message ids, chosen
by code, so a translation follows the code and not the wording. A test holds the two
in step.
"""

from __future__ import annotations

from supervisor.i18n.catalogue import N_, Translator
from verification.types import ChallengeKind, QualityIssue

ADVICE: dict[QualityIssue, str] = {
    QualityIssue.face_too_small: N_("Move closer to the camera."),
    QualityIssue.too_blurred: N_("Hold still and make sure the camera is in focus."),
    QualityIssue.too_dark: N_("Turn on a light or face a window."),
    QualityIssue.too_bright: N_("Move away from strong light behind or in front of you."),
    QualityIssue.face_cut_off: N_("Move so that your whole face is inside the picture."),
    QualityIssue.face_occluded: N_("Please take off your mask."),
}

PROMPTS: dict[ChallengeKind, str] = {
    ChallengeKind.blink: N_("Blink once."),
    ChallengeKind.turn_left: N_("Turn your head to your left."),
    ChallengeKind.turn_right: N_("Turn your head to your right."),
    ChallengeKind.look_up: N_("Look up."),
}


def advice(t: Translator, issues: tuple[str, ...] | list[str]) -> list[str]:
    """What the learner can do about each quality issue (unknown codes are skipped)."""
    return [t.gettext(ADVICE[QualityIssue(i)]) for i in issues if i in QualityIssue.__members__]


def prompt(t: Translator, kind: ChallengeKind) -> str:
    """The challenge's instruction."""
    return t.gettext(PROMPTS[kind])
