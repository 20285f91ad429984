"""Keeping a check's evidence frame without ever losing the check to the evidence store.

A full or broken evidence disk must not cost a learner a check nor the ledger an
event: the check is recorded without its frame, and the event says why.
"""

from __future__ import annotations

import logging
from datetime import datetime

from storage.exceptions import EvidenceStoreFull, EvidenceStoreUnavailable
from storage.protocols import EvidenceStore

log = logging.getLogger(__name__)


def keep_frame(
    store: EvidenceStore, jpeg: bytes, retain_until: datetime
) -> tuple[str | None, str | None]:
    """Store `jpeg`; return (its SHA-256, None), or (None, why it could not be kept).

    Blocking: call it from a worker thread or process, never on the event loop.
    """
    try:
        return store.put(jpeg, "image/jpeg", retain_until).sha256, None
    except EvidenceStoreFull as exc:
        log.error("evidence not kept: %s", exc)
        return None, f"evidence_store_full: {exc}"
    except EvidenceStoreUnavailable as exc:
        # Only the folder: a database error (StorageUnavailable) goes up, and the
        # caller must not go on.
        log.error("evidence not kept: %s", exc)
        return None, f"evidence_store_unavailable: {exc}"
