"""Every ledger event kind of every wing, in one explicit registry.

Decoding looks a stored kind up here only, so what a reader can decode never
depends on which modules happen to have been imported. A kind is added by adding
its class to its module's `KINDS`; two classes may not share a kind name.
"""

from __future__ import annotations

from supervisor.ledger import (
    appeals,
    claims,
    classroom,
    dispatch,
    events,
    inspection,
    privacy,
    records,
    subsidy,
)
from supervisor.ledger.events import Event

_MODULES = (events, classroom, subsidy, inspection, privacy, records, claims, appeals, dispatch)


def _registry() -> dict[str, type[Event]]:
    found: dict[str, type[Event]] = {}
    for module in _MODULES:
        for cls in module.KINDS:
            if cls.KIND in found:
                raise ValueError(f"event kind {cls.KIND!r} is defined twice")
            found[cls.KIND] = cls
    return found


EVENT_TYPES: dict[str, type[Event]] = _registry()
