"""The biometric consent text a learner agrees to, by version and language.

The version in force is a setting (`security.consent_text_version`); the ledger
records the version each consent was given under, so the text of every version
ever used stays here.

A version's text exists in English (the version itself, e.g. `2026-11-v1`) and in
translations named by a language suffix (`2026-11-v1-zh-CN`): the version a learner
agrees to, and that the ledger records, names the language they read. Both say the
same; `base_version` gives the version a translated one belongs to.
"""

from __future__ import annotations

# Suffixes of translated versions, by BCP 47 tag; English is the unsuffixed version.
LANGUAGE_SUFFIXES = ("zh-CN",)

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
    "2026-11-v1-zh-CN": """\
补贴性职业技能培训人脸信息采集同意书（版本 2026-11-v1-zh-CN）

按照实名制管理要求，培训补贴只发给真实参加培训的本人，学时须经人脸核验确认。
如您同意：

1. 登录时和学习过程中的随机时刻，系统会把摄像头画面中的人脸与您登记的照片比对
   （人脸核验），确认是您本人在学习。
2. 您的人脸特征（由照片计算出的 128 个数字）加密保存，与姓名、身份证号分开存放，
   仅在您参加培训期间保留。
3. 核验时刻拍下的画面作为证据，按人社部门规定的期限保存，到期删除；
   删除后仅在监管记录中保留其哈希值（数字指纹）。
4. 摄像头不会持续被人查看：只在核验时刻取画面。
5. 您可以随时撤回本同意。撤回后您的人脸特征会被删除，人脸核验随即停止；
   您可以向培训机构申请用其他方式核验出勤。
""",
}


def consent_text(version: str) -> str:
    """The consent text of a version (English or translated, e.g. `2026-11-v1-zh-CN`);
    a placeholder naming the version if unknown."""
    return _CONSENT.get(
        version,
        f"Biometric consent, version {version}. Ask your training institution for the text.",
    )


def localized_version(version: str, language: str) -> str:
    """The version of `version`'s text in `language` (a BCP 47 tag such as `zh-CN` or
    `en`): the translated version where one exists, else `version` itself (English)."""
    translated = f"{version}-{language}"
    return translated if language in LANGUAGE_SUFFIXES and translated in _CONSENT else version


def consent_text_in(version: str, language: str) -> tuple[str, str]:
    """(the version in `language`, its text): what a learner reading `language` is
    shown, and the version their consent records."""
    chosen = localized_version(version, language)
    return chosen, consent_text(chosen)


def base_version(version: str) -> str:
    """The version a translated version belongs to (`2026-11-v1-zh-CN` -> `2026-11-v1`);
    consent to any language of the version in force is consent to that version."""
    for suffix in LANGUAGE_SUFFIXES:
        if version.endswith("-" + suffix):
            return version[: -len(suffix) - 1]
    return version
