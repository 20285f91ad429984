"""Service commands: serve, migrate, tokens, ledger verification, evidence purge."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from config import Settings
from storage.exceptions import StorageError
from storage.migrate import upgrade
from storage.types import Role
from supervisor.cli.common import open_migrated


def run_serve(settings: Settings) -> int:
    import uvicorn

    from supervisor.app import create_app

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.server.host,
        port=settings.server.port,
        timeout_graceful_shutdown=10,
        log_level="info",
    )
    return 0


def run_migrate(settings: Settings) -> int:
    try:
        upgrade(settings.database.url)
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"database at head: {_safe_url(settings.database.url)}")
    return 0


def run_token_create(
    settings: Settings,
    role: str,
    institution_id: int | None,
    learner_id: int | None,
    label: str | None,
) -> int:
    try:
        r = Role(role)
    except ValueError:
        print(
            f"error: unknown role {role!r} (admin, operator, inspector, learner)", file=sys.stderr
        )
        return 2
    if r is Role.operator and institution_id is None:
        print("error: an operator token needs --institution ID", file=sys.stderr)
        return 2
    if r is Role.learner and learner_id is None:
        print("error: a learner token needs --learner ID", file=sys.stderr)
        return 2
    with open_migrated(settings) as storage:
        try:
            if institution_id is not None:
                storage.registry.get_institution(institution_id)
            if learner_id is not None:
                learner = storage.registry.get_learner(learner_id)
                institution_id = learner.institution_id
            token, secret = storage.registry.create_token(
                r, label or f"{r.value} (cli)", institution_id, learner_id
            )
        except StorageError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    print(secret)
    print(f"token {token.id}: role {token.role.value}", file=sys.stderr)
    return 0


def run_ledger_verify(settings: Settings, chains: list[str] | None) -> int:
    with open_migrated(settings) as storage:
        report = storage.ledger.verify(chains or None)
    for b in report.breaks:
        print(f"BROKEN {b.chain_id} first bad event seq={b.seq}: {b.reason}")
    print(
        json.dumps(
            {
                "ok": report.ok,
                "chains": report.chains,
                "events": report.events,
                "broken_chains": len(report.breaks),
            }
        )
    )
    return 0 if report.ok else 1


def run_evidence_purge(settings: Settings) -> int:
    with open_migrated(settings) as storage:
        purged = storage.evidence.purge_expired(datetime.now(UTC))
    print(json.dumps({"purged": len(purged), "hashes": purged}))
    return 0


def _safe_url(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
