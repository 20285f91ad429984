"""Message catalogues: the English text is the message id (the source language), and
each other language has a gettext catalogue `locales/<lang>/LC_MESSAGES/messages.po`.

The `.po` files are the only source: each is compiled in memory (Babel) the first time
a process asks for its language, so a clean clone runs without a build step and no
compiled file can fall out of date. `make messages` extracts new message ids from the
code and the templates into the catalogues (see README, "Languages").

Code marks a message for extraction with `N_("...")` (it returns the text unchanged)
and translates it where the language is known, with `Translator.gettext`. Templates use
Jinja2's i18n extension (`{% trans %}`, `_()`), installed per language by
`supervisor.i18n.pages`.
"""

from __future__ import annotations

import gettext
import io
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from supervisor.i18n.languages import Language

LOCALES_DIR = Path(__file__).resolve().parent / "locales"
DOMAIN = "messages"


def N_(message: str) -> str:  # noqa: N802 - the conventional gettext marker
    """Mark `message` for extraction into the catalogues; returns it unchanged."""
    return message


def po_path(language: Language) -> Path:
    return LOCALES_DIR / language.catalogue / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def _translations(language: Language) -> gettext.NullTranslations:
    """The compiled catalogue of a language (once per process). English, the source
    language, translates every message to itself. Fuzzy entries are left out, so an
    unchecked translation shows in English rather than wrongly."""
    if language is Language.en:
        return gettext.NullTranslations()
    with po_path(language).open("rb") as fh:
        catalog = read_po(fh, locale=language.catalogue, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


@dataclass(frozen=True, slots=True)
class Translator:
    """The messages of one language."""

    language: Language
    translations: gettext.NullTranslations

    def gettext(self, message: str) -> str:
        return self.translations.gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self.translations.ngettext(singular, plural, n)

    def __call__(self, message: str, /, **params: object) -> str:
        """The translated message, with `{name}` parameters filled in."""
        text = self.translations.gettext(message)
        return text.format(**params) if params else text


def translator(language: Language) -> Translator:
    """The translator of a language (its catalogue compiled once per process)."""
    return Translator(language, _translations(language))
