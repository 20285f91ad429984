"""`open_storage`: the one entry point that builds every store from settings."""

from __future__ import annotations

import base64
import binascii
from types import TracebackType
from typing import Self

from config.settings import DatabaseSettings, EvidenceSettings
from storage.appeals_sql import SqlAppealStore
from storage.claims_sql import SqlClaimStore
from storage.classroom_sql import SqlClassroomStore
from storage.dispatch_sql import SqlDispatchStore
from storage.engine import Database, create_database
from storage.evidence_local import LocalEvidenceStore
from storage.exceptions import StorageConfigError
from storage.inspection_sql import SqlAccessLog, SqlSealStore
from storage.ledger_sql import SqlLedgerStore
from storage.migrate import check_schema
from storage.protocols import (
    AccessLogStore,
    AppealStore,
    ClaimStore,
    ClassroomStore,
    DispatchStore,
    EvidenceStore,
    LedgerStore,
    RecordsStore,
    RegistryStore,
    SealStore,
    SignatureStore,
    SubsidyStore,
    SummaryStore,
    TemplateStore,
    WorkspaceSessionStore,
)
from storage.records_sql import SqlRecordsStore
from storage.registry_sql import SqlRegistryStore
from storage.sessions_sql import SqlWorkspaceSessionStore
from storage.signatures_sql import SqlSignatureStore
from storage.subsidy_sql import SqlSubsidyStore
from storage.summaries_sql import SqlSummaryStore
from storage.templates_sql import KEY_BYTES, SqlTemplateStore


class Storage:
    """The storage of one process: `.ledger`, `.registry`, `.templates`, `.signatures`,
    `.evidence`,
    `.classroom`, `.seals`, `.access_log`, `.subsidy`, `.summaries`,
    `.workspace_sessions`, `.records`, `.claims`, `.appeals`, `.dispatch`, each typed by
    its protocol (`storage.protocols`), whatever implements it.

    Thread-safe. `close()` finishes pending ledger appends, stops the ledger's
    writer thread and closes the database connections. Usable as a context manager.
    """

    def __init__(
        self,
        db: Database,
        ledger: LedgerStore,
        registry: RegistryStore,
        templates: TemplateStore,
        evidence: EvidenceStore,
        signatures: SignatureStore,
    ) -> None:
        self.db = db
        self.ledger = ledger
        self.registry = registry
        self.templates = templates
        self.evidence = evidence
        self.signatures = signatures
        self.classroom: ClassroomStore = SqlClassroomStore(db)
        self.seals: SealStore = SqlSealStore(db)
        self.access_log: AccessLogStore = SqlAccessLog(db)
        self.subsidy: SubsidyStore = SqlSubsidyStore(db)
        self.summaries: SummaryStore = SqlSummaryStore(db)
        self.workspace_sessions: WorkspaceSessionStore = SqlWorkspaceSessionStore(db)
        self.records: RecordsStore = SqlRecordsStore(db)
        self.claims: ClaimStore = SqlClaimStore(db)
        self.appeals: AppealStore = SqlAppealStore(db)
        self.dispatch: DispatchStore = SqlDispatchStore(db)
        self._closed = False

    def close(self) -> None:
        """Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self.ledger.close()
        finally:
            self.db.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def decode_template_key(template_key_b64: str) -> bytes:
    """The 32-byte AES key from its base64 text; raises `StorageConfigError` otherwise."""
    try:
        key = base64.b64decode(template_key_b64.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise StorageConfigError("template key is not valid base64") from None
    if len(key) != KEY_BYTES:
        raise StorageConfigError(
            f"template key must decode to {KEY_BYTES} bytes (got {len(key)}); "
            "generate one with: python -c "
            "'import os, base64; print(base64.b64encode(os.urandom(32)).decode())'"
        )
    return key


def open_storage(
    database: DatabaseSettings,
    evidence: EvidenceSettings,
    template_key_b64: str,
    *,
    group_commit: bool = True,
    check_schema_version: bool = True,
) -> Storage:
    """Build the stores. Does not migrate: run `storage.migrate.upgrade` first.

    With `check_schema_version` (the default) the database is contacted once: it
    raises `StorageUnavailable` when unreachable and `SchemaOutdated` when not
    migrated to this code's head. `group_commit=False` makes every ledger append
    its own transaction (for comparison; slower under concurrency).
    """
    key = decode_template_key(template_key_b64)
    db = create_database(database)
    try:
        if check_schema_version:
            check_schema(db)
        ledger = SqlLedgerStore(
            db, append_retries=database.append_retries, group_commit=group_commit
        )
        store = Storage(
            db,
            ledger,
            SqlRegistryStore(db),
            SqlTemplateStore(db, key),
            LocalEvidenceStore(db, evidence.directory),
            SqlSignatureStore(db, key),
        )
    except BaseException:
        db.dispose()
        raise
    return store
