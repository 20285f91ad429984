"""The languages people read the service in, and how a request's language is chosen.

Order of precedence (first that names a supported language wins):
1. the query parameter `lang` (the switch on every page: a plain link);
2. the cookie `sv_lang` (set when the switch was used; a preference, not a credential);
3. the `Accept-Language` header, by quality value;
4. the setting `web.default_language` (`zh-CN`).

The switch changes nothing but the display language, so a link from another site can
at most switch a page to the other language; it is not a state change that CSRF
protection must guard, and the cookie is SameSite=Lax, readable by no script.
"""

from __future__ import annotations

from enum import StrEnum

LANG_PARAM = "lang"
LANG_COOKIE = "sv_lang"
# A year: the preference outlives a sign-in.
LANG_COOKIE_MAX_AGE = 365 * 86400


class Language(StrEnum):
    """A supported language, named by its BCP 47 tag (as in `<html lang>`)."""

    zh_CN = "zh-CN"  # Simplified Chinese, the users' language
    en = "en"  # English, the source language of every message

    @property
    def catalogue(self) -> str:
        """The gettext catalogue's folder name (`zh_CN`, `en`)."""
        return self.value.replace("-", "_")

    @property
    def native_name(self) -> str:
        """The language's name in itself, as the switch shows it."""
        return {Language.zh_CN: "中文", Language.en: "English"}[self]


def parse(tag: str | None) -> Language | None:
    """The supported language a tag names, or None. Any Chinese tag (`zh`, `zh-Hans`,
    `zh-TW`...) reads as Simplified Chinese: nearer to a Chinese reader than English."""
    if not tag:
        return None
    primary = tag.strip().lower().replace("_", "-").split("-", 1)[0]
    if primary == "zh":
        return Language.zh_CN
    if primary == "en":
        return Language.en
    return None


def from_accept_language(header: str | None) -> Language | None:
    """The preferred supported language of an `Accept-Language` header (quality values
    honoured, ties in header order), or None when it names none."""
    if not header:
        return None
    best: tuple[float, int, Language] | None = None
    for position, part in enumerate(header.split(",")[:32]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        language = parse(tag)
        if language is None or not 0.0 < quality <= 1.0:
            continue
        if best is None or (quality, -position) > (best[0], -best[1]):
            best = (quality, position, language)
    return best[2] if best else None


def choose(
    query: str | None, cookie: str | None, accept_language: str | None, default: Language
) -> Language:
    """The request's language, by the precedence in this module's docstring."""
    return parse(query) or parse(cookie) or from_accept_language(accept_language) or default
