"""Evidence frames as the workspace reads them: by the hashes their chains carry.

Blocking functions of the stores (run them in a storage thread). A frame is served
only when an event of the given chains refers to it; the caller checked that the
principal may read those chains.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from storage import Storage
from storage.exceptions import EvidencePurged, IntegrityViolation, NotFound
from supervisor.errors import UnknownId
from supervisor.inspect.packs import evidence_hashes


def chain_hashes(storage: Storage, chain_ids: Iterable[str]) -> set[str]:
    """Every frame hash that an event of the chains refers to."""
    hashes: set[str] = set()
    for chain_id in chain_ids:
        for st in storage.ledger.read_chain(chain_id):
            hashes |= evidence_hashes(st.payload)
    return hashes


def evidence_status(storage: Storage, hashes: set[str]) -> dict[str, str]:
    """sha -> retained | purged | missing, from the evidence records (no image read)."""
    records = storage.evidence.records(hashes)
    return {
        sha: (
            "missing"
            if sha not in records
            else ("purged" if records[sha].purged_at is not None else "retained")
        )
        for sha in hashes
    }


def check_frames(storage: Storage, chain_ids: Sequence[str]) -> dict[str, str]:
    """Hash every retained frame of the chains: sha -> ok | altered | purged | missing."""
    out: dict[str, str] = {}
    for sha in sorted(chain_hashes(storage, chain_ids)):
        try:
            storage.evidence.get(sha)
            out[sha] = "ok"
        except EvidencePurged:
            out[sha] = "purged"
        except IntegrityViolation as exc:
            out[sha] = "altered" if "damaged" in str(exc) else "missing"
        except NotFound:
            out[sha] = "missing"
    return out


def find_frame(storage: Storage, chain_ids: Sequence[str], sha256: str) -> bytes:
    """A frame that the given chains refer to; `UnknownId` when none of their events does."""
    for chain_id in chain_ids:
        for st in storage.ledger.read_chain(chain_id):
            if sha256 in st.payload and sha256 in evidence_hashes(st.payload):
                return storage.evidence.get(sha256)
    raise UnknownId("no event of this record refers to that frame")
