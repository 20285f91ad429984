"""Contract of the workspace session store, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from storage import Storage
from storage.exceptions import InvalidInput, NotFound
from storage.models import workspace_sessions
from storage.types import Role

T0 = datetime(2026, 12, 6, 9, tzinfo=UTC)
IDLE = 1800.0


def test_a_session_lives_until_idle_absolute_expiry_or_sign_out(store: Storage) -> None:
    sessions = store.workspace_sessions
    token, _ = store.registry.create_token(Role.inspector, "inspector")
    secret = secrets.token_urlsafe(32)
    opened = sessions.open(secret, token.id, T0, T0 + timedelta(hours=8))
    assert opened.token_id == token.id and opened.revoked_at is None

    # Only the hash is kept.
    with store.db.read() as conn:
        kept = conn.execute(select(workspace_sessions.c.secret_sha256)).scalars().all()
    assert kept == [hashlib.sha256(secret.encode()).hexdigest()]

    found = sessions.resolve(secret, T0 + timedelta(minutes=20), IDLE)
    assert found is not None and found[1].id == token.id and found[1].role is Role.inspector
    # Use renews the idle clock: 20 + 25 minutes after opening is 25 idle minutes.
    assert sessions.resolve(secret, T0 + timedelta(minutes=45), IDLE) is not None
    # Idle longer than the limit: dead, and it stays dead.
    late = T0 + timedelta(minutes=45) + timedelta(seconds=IDLE + 1)
    assert sessions.resolve(secret, late, IDLE) is None
    assert sessions.resolve(secret, late + timedelta(seconds=1), 10 * IDLE) is None

    # Absolute expiry, however busy the session is.
    other = secrets.token_urlsafe(32)
    sessions.open(other, token.id, T0, T0 + timedelta(hours=1))
    for minutes in range(10, 60, 10):
        assert sessions.resolve(other, T0 + timedelta(minutes=minutes), IDLE) is not None
    assert sessions.resolve(other, T0 + timedelta(hours=1), IDLE) is None

    # Sign-out revokes; a wrong or empty secret finds nothing.
    third = secrets.token_urlsafe(32)
    sessions.open(third, token.id, T0, T0 + timedelta(hours=8))
    assert sessions.resolve(third + "x", T0, IDLE) is None
    assert sessions.resolve("", T0, IDLE) is None
    assert sessions.revoke(third, T0 + timedelta(minutes=1)) is True
    assert sessions.revoke(third, T0 + timedelta(minutes=2)) is False
    assert sessions.resolve(third, T0 + timedelta(minutes=3), IDLE) is None

    # Purge removes what died before the cut.
    assert sessions.purge(T0 + timedelta(days=1)) == 3
    assert sessions.purge(T0 + timedelta(days=1)) == 0


def test_pages_in_quick_succession_read_without_writing(store: Storage) -> None:
    sessions = store.workspace_sessions
    token, _ = store.registry.create_token(Role.inspector, "quick")
    secret = secrets.token_urlsafe(32)
    sessions.open(secret, token.id, T0, T0 + timedelta(hours=8))
    # Within a tenth of the idle limit (3 minutes here, capped at a minute) of the last
    # marked use, a page is answered by a read: last_seen_at stays where it was.
    for seconds in (1, 20, 59):
        found = sessions.resolve(secret, T0 + timedelta(seconds=seconds), IDLE)
        assert found is not None
        session, tok = found
        assert tok == token and session.last_seen_at == T0
    found = sessions.resolve(secret, T0 + timedelta(seconds=61), IDLE)
    assert found is not None and found[0].last_seen_at == T0 + timedelta(seconds=61)
    # The read path knows revoked tokens and lapsed sessions too.
    store.registry.revoke_token(token.id, T0 + timedelta(seconds=62))
    assert sessions.resolve(secret, T0 + timedelta(seconds=63), IDLE) is None


def test_a_revoked_token_ends_its_sessions_and_opens_none(store: Storage) -> None:
    sessions = store.workspace_sessions
    token, _ = store.registry.create_token(Role.admin, "admin")
    secret = secrets.token_urlsafe(32)
    sessions.open(secret, token.id, T0, T0 + timedelta(hours=8))
    store.registry.revoke_token(token.id, T0 + timedelta(minutes=1))
    assert sessions.resolve(secret, T0 + timedelta(minutes=2), IDLE) is None
    with pytest.raises(NotFound):
        sessions.open(secrets.token_urlsafe(32), token.id, T0, T0 + timedelta(hours=1))
    with pytest.raises(NotFound):
        sessions.open(secrets.token_urlsafe(32), 999_999, T0, T0 + timedelta(hours=1))
    live, _ = store.registry.create_token(Role.admin, "admin 2")
    with pytest.raises(InvalidInput):
        sessions.open("short", live.id, T0, T0 + timedelta(hours=1))
    with pytest.raises(InvalidInput):
        sessions.open(secrets.token_urlsafe(32), live.id, T0, T0)
    with pytest.raises(InvalidInput):
        sessions.open(secrets.token_urlsafe(32), live.id, T0.replace(tzinfo=None), T0)
