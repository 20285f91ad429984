"""Server-rendered pages in the reader's language: one Jinja2 environment per language,
with the i18n extension installed on that language's catalogue and the filters every
page shares (local time, durations).

`Speech` is made once by the app factory (or a CLI command) from the settings and
handed down; environments are built the first time a language is asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import jinja2

from supervisor.i18n.catalogue import Translator, translator
from supervisor.i18n.labels import label
from supervisor.i18n.languages import Language
from supervisor.i18n.localtime import LocalTime
from supervisor.web import TEMPLATES_DIR


def hms(seconds: float | None) -> str:
    """A duration as `HH:MM:SS`."""
    s = int(seconds or 0)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Speech:
    """The default language, the display zone, and a Jinja2 environment per language.

    `filters` are added to every environment (pages add the masking of ID numbers,
    which lives above this room)."""

    def __init__(
        self,
        default: Language,
        clock: LocalTime,
        filters: dict[str, Callable[..., Any]] | None = None,
    ) -> None:
        self.default = default
        self.clock = clock
        self._filters = dict(filters or {})
        self._environments: dict[Language, jinja2.Environment] = {}

    def translator(self, language: Language) -> Translator:
        return translator(language)

    def environment(self, language: Language) -> jinja2.Environment:
        found = self._environments.get(language)
        if found is None:
            found = self._environments[language] = self._build(language)
        return found

    def _build(self, language: Language) -> jinja2.Environment:
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            extensions=["jinja2.ext.i18n"],
        )
        t = translator(language)
        env.install_gettext_translations(t.translations, newstyle=True)  # type: ignore[attr-defined]
        clock = self.clock

        def when(at: datetime | None, seconds: bool = False) -> str:
            return clock.format(at, seconds=seconds)

        env.filters.update(when=when, localdate=clock.date, hms=hms, **self._filters)
        env.globals.update(
            lang=language.value,
            zone=clock.zone_name,
            label=lambda group, code: label(t, group, code),
        )
        return env

    def render(self, language: Language, name: str, **context: Any) -> str:
        return self.environment(language).get_template(name).render(**context)
