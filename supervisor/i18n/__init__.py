"""What a person reads: messages in their language (Simplified Chinese first, English
kept) and times in the configured zone.

- `languages`: the supported languages and how a request's language is chosen;
- `catalogue`: gettext catalogues compiled from `locales/*/LC_MESSAGES/messages.po`;
- `localtime`: the one formatting of times for people (`LocalTime`);
- `pages`: Jinja2 environments with the i18n extension, one per language (`Speech`).

Static scripts read `/static/i18n/<lang>.json` (see `supervisor/web/static/i18n.js`).
"""

from supervisor.i18n.catalogue import N_, Translator, translator
from supervisor.i18n.languages import LANG_COOKIE, LANG_PARAM, Language, choose
from supervisor.i18n.localtime import LocalTime
from supervisor.i18n.pages import Speech

__all__ = [
    "LANG_COOKIE",
    "LANG_PARAM",
    "Language",
    "LocalTime",
    "N_",
    "Speech",
    "Translator",
    "choose",
    "translator",
]
