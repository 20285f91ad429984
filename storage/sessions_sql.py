"""Workspace sessions on SQLAlchemy Core (SQLite and PostgreSQL).

The cookie carries a random secret (at least 128 bits); the table keeps only its
SHA-256, so a copy of the database signs nobody in. A session dies at the first of:
sign-out (`revoked_at`), its absolute expiry, `idle_s` without use, or the
revocation of the token it signed in with.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, delete, insert, or_, select, update

from storage.engine import Database
from storage.exceptions import InvalidInput, NotFound
from storage.models import api_tokens as T
from storage.models import workspace_sessions as W
from storage.registry_sql import _token, hash_secret
from storage.types import Role, Token, WorkspaceSession
from storage.validate import aware

# Secrets shorter than this are refused at creation (128 bits as URL-safe base64).
MIN_SECRET_LEN = 22
MAX_SECRET_LEN = 512
# A session used again within this many seconds (or a tenth of the idle limit, if
# shorter) is not marked used again: one read per page instead of a write.
TOUCH_MAX_S = 60.0


def _session(r: Row[Any]) -> WorkspaceSession:
    return WorkspaceSession(
        r.id, r.token_id, r.created_at, r.last_seen_at, r.expires_at, r.revoked_at
    )


class SqlWorkspaceSessionStore:
    """Thread-safe."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def open(
        self, secret: str, token_id: int, at: datetime, expires_at: datetime
    ) -> WorkspaceSession:
        aware(at, "at")
        aware(expires_at, "expires_at")
        if not isinstance(secret, str) or not MIN_SECRET_LEN <= len(secret) <= MAX_SECRET_LEN:
            raise InvalidInput("a session secret must be 22 to 512 characters")
        if expires_at <= at:
            raise InvalidInput("a session must expire after it opens")
        with self._db.write() as conn:
            live = conn.execute(
                select(T.c.id).where(T.c.id == token_id, T.c.revoked_at.is_(None))
            ).first()
            if live is None:
                raise NotFound(f"no live token {token_id}")
            row = conn.execute(
                insert(W)
                .values(
                    secret_sha256=hash_secret(secret),
                    token_id=token_id,
                    created_at=at,
                    last_seen_at=at,
                    expires_at=expires_at,
                )
                .returning(*W.c)
            ).one()
        return _session(row)

    def resolve(
        self, secret: str, at: datetime, idle_s: float
    ) -> tuple[WorkspaceSession, Token] | None:
        aware(at, "at")
        if not isinstance(secret, str) or not secret or len(secret) > MAX_SECRET_LEN:
            return None
        idle_since = at - timedelta(seconds=idle_s)
        digest = hash_secret(secret)
        live = (
            W.c.secret_sha256 == digest,
            W.c.revoked_at.is_(None),
            W.c.expires_at > at,
            W.c.last_seen_at >= idle_since,
        )
        # Most pages come seconds after the last one: a session marked used less than
        # `touch_s` ago is answered by one read, without a write (idle expiry is then
        # exact to within `touch_s`, at most a tenth of the idle limit or a minute).
        touch_s = min(TOUCH_MAX_S, idle_s / 10)
        with self._db.read() as conn:
            seen = conn.execute(
                select(W, *[c.label(f"tok_{c.name}") for c in T.c])
                .join(T, T.c.id == W.c.token_id)
                .where(*live, T.c.revoked_at.is_(None))
            ).first()
        if seen is not None and (at - seen.last_seen_at).total_seconds() < touch_s:
            found = Token(
                seen.tok_id,
                Role(seen.tok_role),
                seen.tok_institution_id,
                seen.tok_learner_id,
                seen.tok_label,
                seen.tok_created_at,
                seen.tok_revoked_at,
            )
            return _session(seen), found
        with self._db.write() as conn:
            # Marking it used in the same statement that checks it is live: two requests
            # racing at the idle limit cannot revive a session that has lapsed.
            touched = conn.execute(
                update(W).where(*live).values(last_seen_at=at).returning(*W.c)
            ).first()
            if touched is None:
                # A lapsed session ends for good: a longer idle limit later must not
                # bring it back.
                conn.execute(
                    update(W)
                    .where(W.c.secret_sha256 == digest, W.c.revoked_at.is_(None))
                    .values(revoked_at=at)
                )
                return None
            token = conn.execute(
                select(T).where(T.c.id == touched.token_id, T.c.revoked_at.is_(None))
            ).first()
        if token is None:
            return None
        return _session(touched), _token(token)

    def revoke(self, secret: str, at: datetime) -> bool:
        aware(at, "at")
        if not isinstance(secret, str) or not secret or len(secret) > MAX_SECRET_LEN:
            return False
        with self._db.write() as conn:
            done = conn.execute(
                update(W)
                .where(W.c.secret_sha256 == hash_secret(secret), W.c.revoked_at.is_(None))
                .values(revoked_at=at)
            )
        return bool(done.rowcount)

    def purge(self, before: datetime) -> int:
        aware(before, "before")
        with self._db.write() as conn:
            done = conn.execute(
                delete(W).where(or_(W.c.expires_at < before, W.c.revoked_at < before))
            )
        return int(done.rowcount or 0)
