"""Helpers of the storage contract suite."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import text

from storage import Storage

TEMPLATE_KEY = base64.b64encode(b"k" * 32).decode()
OTHER_KEY = base64.b64encode(b"o" * 32).decode()


def tamper(store: Storage, sql: str, **params: Any) -> None:
    """Run SQL as an attacker with owner rights would: append-only triggers disabled."""
    with store.db.engine.connect() as conn, conn.begin():
        if store.db.is_sqlite:
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS ledger_events_no_update")
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS ledger_events_no_delete")
        else:
            # The append-only guards go; the trigger that keeps ledger_heads stays, as on
            # SQLite (an attacker who also edits the head index is caught by seals).
            conn.exec_driver_sql(
                "ALTER TABLE ledger_events DISABLE TRIGGER ledger_events_append_only"
            )
            conn.exec_driver_sql(
                "ALTER TABLE ledger_events DISABLE TRIGGER ledger_events_no_truncate"
            )
        conn.execute(text(sql), params)


def raw_rows(store: Storage, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    """Rows exactly as the database returns them, bypassing the stores."""
    with store.db.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), params)]


def id_number(seed: int) -> str:
    """An 18-character resident ID number with a correct GB 11643 check character."""
    body = f"110101{1980 + seed % 30:04d}0101{seed % 1000:03d}"
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    total = sum(int(d) * w for d, w in zip(body, weights, strict=True))
    return body + "10X98765432"[total % 11]


def vector(seed: int) -> npt.NDArray[np.float64]:
    return np.random.default_rng(seed).normal(0.0, 0.1, 128)
