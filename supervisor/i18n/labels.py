"""Names for a person of the codes the record uses (roles, verdicts, statuses, flag
kinds...), by group. A code without a name here is shown as it is: a code is still
better than nothing, and the record keeps codes, never translations.
"""

from __future__ import annotations

from supervisor.i18n.catalogue import N_, Translator

LABELS: dict[str, dict[str, str]] = {
    "role": {
        "admin": N_("administrator"),
        "operator": N_("institution operator"),
        "bureau": N_("bureau staff"),
        "inspector": N_("inspector"),
        "learner": N_("learner"),
    },
    "verdict": {
        "match": N_("identity confirmed"),
        "mismatch": N_("not the enrolled learner"),
        "present": N_("present"),
        "no_face": N_("no face"),
        "multiple_faces": N_("several faces"),
        "low_quality": N_("picture unclear"),
        "missed": N_("not answered"),
        "deferred": N_("deferred (service busy)"),
        "spoof": N_("looked like a photo or video"),
        "challenge_failed": N_("action not done"),
        "challenge_timed_out": N_("action not done in time"),
        "roll_call": N_("roll call"),
    },
    "check_kind": {
        "identity": N_("identity check"),
        "presence": N_("presence check"),
        "missed": N_("missed check"),
        "deferred": N_("deferred check"),
        "roll_call": N_("roll call"),
    },
    "outcome": {
        "open": N_("in progress"),
        "learner": N_("ended by the learner"),
        "failed_windows": N_("ended after failed checks"),
        "consent_withdrawn": N_("consent withdrawn"),
        "operator": N_("ended by the institution"),
        "expired": N_("ended after disconnection"),
    },
    "record_kind": {
        "session": N_("online study session"),
        "class": N_("class"),
    },
    "item": {
        "prompt": N_("prompt"),
        "state": N_("state change"),
        "start": N_("start"),
        "end": N_("end"),
        "other": N_("other"),
    },
    "seal": {
        "sealed_ok": N_("matches the latest seal"),
        "sealed_mismatch": N_("DOES NOT MATCH the latest seal"),
        "not_sealed": N_("not sealed yet (newer than the latest seal)"),
        "no_seal": N_("no seal has been made yet"),
        "bad_signature": N_("the seal's signature is WRONG"),
    },
    "spot_verdict": {
        "regular": N_("regular"),
        "irregular": N_("irregular"),
    },
    "institution_status": {
        "active": N_("active"),
        "suspended": N_("suspended"),
        "expelled": N_("expelled"),
    },
    "delivery_mode": {
        "online": N_("online"),
        "classroom": N_("classroom"),
        "blended": N_("blended (online and classroom)"),
    },
    "subsidy_kind": {
        "per_learner": N_("per learner"),
        "per_hour": N_("per hour"),
    },
    "publication": {
        "draft": N_("draft"),
        "published": N_("published"),
        "withdrawn": N_("withdrawn"),
    },
    "flag_status": {
        "open": N_("open"),
        "confirmed": N_("confirmed"),
        "dismissed": N_("dismissed"),
    },
    "flag": {
        "duplicate_identity": N_("one face under two identities"),
        "check_impostor": N_("someone studying for another learner"),
        "two_places_online": N_("online in two places at once"),
        "two_places_classroom": N_("in class and online at once"),
        "pass_rate_outlier": N_("check pass rate far from other institutions"),
        "check_timing_outlier": N_("check timing far from other institutions"),
        "odd_hour_burst": N_("many sessions started at night"),
        "replayed_image": N_("replayed image"),
        "liveness_spoof": N_("photo or video instead of a person"),
        "assessment_headcount": N_("assessment headcount differs from the roster"),
        "assessment_unknown_face": N_("unknown person at an assessment"),
        "chain_broken": N_("a ledger chain was altered (integrity alarm)"),
    },
    "eligibility": {
        "course_not_published": N_("course not published"),
        "not_in_real_name_system": N_("not in the real-name system"),
        "no_consent": N_("no biometric consent"),
        "no_face_enrolled": N_("no face enrolled"),
        "not_enrolled": N_("not enrolled in the course"),
        "insufficient_hours": N_("not enough credited hours"),
        "start_check_not_passed": N_("a session began without a passed identity check"),
        "no_assessment": N_("no assessment result"),
        "assessment_failed": N_("assessment failed"),
        "open_fraud_flag": N_("an open fraud flag"),
        "confirmed_fraud_flag": N_("a confirmed fraud flag"),
        "chain_broken": N_("a ledger chain it rests on is broken"),
    },
    # The key groups of the policy (supervisor.ledger.records.KEY_GROUPS).
    "key_group": {
        "rural_migrant_worker": N_("rural migrant worker"),
        "school_leaver": N_("school leaver not in further education"),
        "unemployed": N_("laid-off or unemployed"),
        "veteran": N_("veteran"),
        "employment_difficulty": N_("person with employment difficulties"),
        "poverty_risk": N_("person at risk of returning to poverty"),
        "enterprise_staff": N_("enterprise staff"),
    },
    # Skill levels of the national scheme: 5 is the lowest, 1 the highest.
    "skill_level": {
        "5": N_("level 5 (beginner)"),
        "4": N_("level 4 (intermediate)"),
        "3": N_("level 3 (advanced)"),
        "2": N_("level 2 (technician)"),
        "1": N_("level 1 (senior technician)"),
    },
    "division_level": {
        "province": N_("province"),
        "city": N_("city"),
        "county": N_("county or district"),
    },
}


def label(t: Translator, group: str, code: object) -> str:
    """The name of `code` in `group`, in `t`'s language; the code itself if unnamed."""
    text = str(code.value if hasattr(code, "value") else code)
    found = LABELS.get(group, {}).get(text)
    return t.gettext(found) if found else text
