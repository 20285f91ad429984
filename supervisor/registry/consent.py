"""The biometric consent text a learner agrees to, by version.

The version in force is a setting (`security.consent_text_version`); the ledger
records the version each consent was given under, so the text of every version
ever used stays here.
"""

from __future__ import annotations

_CONSENT = {
    "2026-11-v1": """\
Biometric consent for supervised training (version 2026-11-v1)

To receive a training subsidy, your learning must be verified. If you agree:

1. We compare your face with the photo you enrol, at sign-in and at random moments
   while you study, to confirm that you are the person studying.
2. We keep your face template (a list of 128 numbers computed from your photo)
   encrypted and apart from your name and ID number, only while you are enrolled.
3. We keep the camera frames taken at check moments as evidence for the period set
   by the training authority, then delete them; their fingerprints (hashes) remain
   in the audit record.
4. Nobody sees your camera continuously: frames are taken only at check moments.
5. You may withdraw this consent at any time. Your face templates are then deleted
   and face checks stop; you may ask your training institution for another way to
   have your attendance verified.
""",
}


def consent_text(version: str) -> str:
    """The consent text of a version; a placeholder naming the version if unknown."""
    return _CONSENT.get(
        version,
        f"Biometric consent, version {version}. Ask your training institution for the text.",
    )
