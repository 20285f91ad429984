"""Proxy-study shops: one device, or one room, studying for many learners (代学, 代刷).

Each session keeps where it was studied from: the client's network address and an
HMAC (`security.device_salt`) of the device fingerprint its page reports, never the
fingerprint itself. Both are personal data, kept for `subsidy.client_retention_days`
in the registry, not in the ledger. At sign-in:

- a device already used by another learner of the same institution raises a
  `shared_device` flag on the new learner, naming the others;
- more than `subsidy.max_learners_per_address` learners studying at once from one
  address raise a `crowded_address` flag on the learner who made it too many.

Each flag carries as evidence the first event of every session involved. A page can
lie about its fingerprint; a shop that bothers to vary it still shows in its address,
and the flags only ask for the bureau's eyes: they decide nothing by themselves.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from config import Settings
from storage import Storage
from storage.types import Flag, SessionClient, StudySession
from supervisor.checks.flags import raise_flag
from supervisor.rules.flags import EvidenceRef, view

SHARED_DEVICE = "shared_device"
CROWDED_ADDRESS = "crowded_address"
EVIDENCE_SESSIONS = 20  # sessions named as evidence in one flag, at most


@dataclass(frozen=True, slots=True)
class Client:
    """What a sign-in request says about where it comes from."""

    address: str  # the peer's network address as the service sees it
    fingerprint: str | None  # what the page reports about its device (untrusted)


def device_hash(settings: Settings, fingerprint: str) -> str:
    """The keyed hash kept of a device fingerprint (hex)."""
    key = settings.security.device_salt.get_secret_value().encode()
    return hmac.new(key, fingerprint.encode("utf-8", "replace"), hashlib.sha256).hexdigest()


def _evidence(storage: Storage, clients: list[SessionClient]) -> list[EvidenceRef]:
    refs = []
    for c in clients[-EVIDENCE_SESSIONS:]:
        chain = f"session:{c.session_id}"
        first = storage.ledger.read_chain(chain, 0, 1)
        if not first:
            continue  # nothing recorded to point at
        refs.append(
            EvidenceRef(
                chain,
                first[0].seq,
                first[0].hash,
                None,
                {"learner_id": c.learner_id},
            )
        )
    return refs


def _raised(storage: Storage, kind: str, learner_id: int, key: str) -> bool:
    return any(
        view(f).key == key for f in storage.subsidy.find_flags(kind=kind, learner_id=learner_id)
    )


def record_client(
    storage: Storage, settings: Settings, session: StudySession, client: Client, now: datetime
) -> list[Flag]:
    """Keep where the session comes from and raise the flags it calls for (blocking)."""
    digest = device_hash(settings, client.fingerprint) if client.fingerprint else None
    retain = now + timedelta(days=settings.subsidy.client_retention_days)
    storage.registry.record_session_client(session.id, client.address, digest, now, retain)
    raised: list[Flag] = []
    if digest is not None:
        same = storage.registry.session_clients(
            institution_id=session.institution_id, device_hash=digest
        )
        others = sorted({c.learner_id for c in same} - {session.learner_id})
        key = f"{SHARED_DEVICE}:{session.institution_id}:{digest[:16]}:{session.learner_id}"
        if others and not _raised(storage, SHARED_DEVICE, session.learner_id, key):
            raised.append(
                raise_flag(
                    storage,
                    SHARED_DEVICE,
                    session.institution_id,
                    session.learner_id,
                    others,
                    f"learner {session.learner_id} studies on a device that "
                    f"{len(others)} other learner(s) of the institution also used",
                    _evidence(storage, same),
                    now,
                    key=key,
                    scores={"learners": len(others) + 1, "sessions": len(same)},
                )
            )
    crowd = storage.registry.session_clients(address=client.address, open_only=True)
    learners = {c.learner_id for c in crowd}
    limit = settings.subsidy.max_learners_per_address
    if len(learners) > limit:
        key = f"{CROWDED_ADDRESS}:{session.id}"
        raised.append(
            raise_flag(
                storage,
                CROWDED_ADDRESS,
                session.institution_id,
                session.learner_id,
                sorted(learners - {session.learner_id}),
                f"{len(learners)} learners study at once from one network address "
                f"(more than {limit})",
                _evidence(storage, crowd),
                now,
                key=key,
                scores={"learners": len(learners), "limit": limit},
            )
        )
    return raised
