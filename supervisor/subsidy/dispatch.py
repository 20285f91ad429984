"""The monthly dispatch report: computed from the ledger, closed once, kept and sealed.

- An **open** period's report is computed on request from the scan (chain summaries)
  with the ledger cut at the period's end (`supervisor.rules.dispatch`).
- A period is **closed** by the bureau (`close`), or at the first request after its end
  plus `subsidy.dispatch_close_grace_days`: the report is computed once, with the
  ledger cut at `as_of` (the period's end, or the moment of closing if earlier), its
  canonical JSON kept in `dispatch_reports` and its SHA-256 appended to the ledger
  (`dispatch_report_closed` in `dispatch:<region>:<period>`), which the periodic seal
  covers. From then on the kept copy is served, whatever is appended later; each
  time it is served its SHA-256 is checked against the ledger event.
- A **correction** (`correct`, the bureau, with a reason) computes the report again
  on the ledger as it stands, and keeps it as version n+1 with the figures that
  changed, key by key, and the reason; every version stays readable.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from config import Settings
from storage import Storage
from storage.canonical import canonical_json
from storage.exceptions import Duplicate
from storage.types import DispatchRecord
from supervisor.auth import READ_ALL, Principal, require_bureau, require_role
from supervisor.context import Context
from supervisor.errors import Conflict, InvalidInput, UnknownId
from supervisor.ledger import codec
from supervisor.ledger.dispatch import DispatchReportClosed, dispatch_chain
from supervisor.ledger.events import iso
from supervisor.rules.dispatch import (
    CourseFacts,
    Period,
    diff,
    dispatch_report,
    parse_period,
    region_chain_key,
    region_level,
)
from supervisor.runtime.gc_pause import gc_paused
from supervisor.subsidy.scan import Snapshot, scan


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def course_facts(snap: Snapshot, registered: dict[int, tuple[int, str]]) -> dict[int, CourseFacts]:
    """Every course's owner, delivery mode and classification: the ledger's (published
    rules, `course_classified`) where it has them, the registry's (`registered`:
    course -> (institution, delivery mode)) for the rest."""
    out: dict[int, CourseFacts] = {}
    for cid in registered.keys() | snap.terms.keys() | snap.classified.keys():
        terms, found = snap.terms.get(cid), snap.classified.get(cid)
        institution, mode = registered.get(cid, (0, "blended"))
        if terms is not None:
            institution, mode = terms.institution_id, terms.delivery_mode
        elif found is not None:
            institution = found.institution_id
        out[cid] = CourseFacts(
            cid,
            institution,
            mode,
            found.occupation_code if found is not None else None,
            found.skill_level if found is not None else None,
        )
    return out


@gc_paused
def compute(
    storage: Storage,
    settings: Settings,
    period: Period,
    region: str | None,
    as_of: datetime,
    *,
    use_summaries: bool = True,
) -> dict[str, Any]:
    """The report of `period` for `region` on the ledger as it stood at `as_of`
    (blocking; run it in a thread)."""
    registered = {
        c.id: (c.institution_id, c.delivery_mode.value) for c in storage.registry.list_courses(None)
    }
    snap = scan(storage, settings, as_of, use_summaries=use_summaries)
    return dispatch_report(
        period,
        region,
        settings.subsidy.timezone,
        as_of,
        course_facts(snap, registered),
        snap.standings,
        snap.learners,
        snap.all_sessions(),
        snap.flags,
        snap.claims.values(),
        (snap.chains, snap.events),
    )


@dataclass(frozen=True, slots=True)
class Served:
    """A report as served: open (computed now) or a kept version."""

    report: dict[str, Any]
    sha256: str
    record: DispatchRecord | None = None  # the kept version served
    versions: tuple[int, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        r = self.record
        return {
            "status": "open" if r is None else "closed",
            "version": None if r is None else r.version,
            "versions": list(self.versions),
            "sha256": self.sha256,
            "closed_at": None if r is None else iso(r.closed_at),
            "closed_by": None if r is None else r.closed_by,
            "reason": None if r is None else r.reason,
            "changes": [] if r is None else json.loads(r.changes),
            "ledger_event": None
            if r is None
            else {"chain_id": r.chain_id, "seq": r.seq, "hash": r.hash},
            "report": self.report,
        }


class DispatchService:
    """Reading, closing and correcting dispatch reports (bureau, inspectors, admins)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.store = ctx.storage.dispatch

    def _parse(self, period: str, region: str | None) -> tuple[Period, str | None]:
        try:
            parsed = parse_period(period, self.ctx.settings.subsidy.timezone)
        except ValueError as exc:
            raise InvalidInput(str(exc), reason="invalid_report_period") from None
        if region in (None, ""):
            return parsed, None
        try:
            region_level(region)
        except ValueError as exc:
            raise InvalidInput(str(exc), reason="invalid_region") from None
        return parsed, region

    async def report(
        self, p: Principal, period: str, region: str | None, version: int | None = None
    ) -> Served:
        """The kept version (the latest, or `version`) of a closed period; a period
        past its grace is closed now; an open one is computed."""
        require_role(p, *READ_ALL)
        parsed, code = self._parse(period, region)
        key = region_chain_key(code)
        kept = await self.ctx.db(self.store.versions, key, parsed.key)
        if version is not None:
            found = [r for r in kept if r.version == version]
            if not found:
                raise UnknownId(f"no version {version} of this report", reason="unknown_version")
            return await self._served(found[0], kept)
        if kept:
            return await self._served(kept[-1], kept)
        now = self.ctx.clock()
        grace = timedelta(days=self.ctx.settings.subsidy.dispatch_close_grace_days)
        if now >= parsed.end + grace:
            try:
                return await self._close(p, parsed, code, "closed: grace passed", kept)
            except Conflict:  # closed by another request meanwhile: serve what it kept
                kept = await self.ctx.db(self.store.versions, key, parsed.key)
                return await self._served(kept[-1], kept)
        as_of = min(now, parsed.end)
        body = await self._compute(parsed, code, as_of)
        return Served(body, sha256_text(canonical_json(body)))

    async def close(self, p: Principal, period: str, region: str | None) -> Served:
        """Close a period now (the bureau): computed on the ledger as it stands (cut at
        the period's end if that is past), kept and sealed."""
        require_bureau(p)
        parsed, code = self._parse(period, region)
        if self.ctx.clock() < parsed.start:
            raise Conflict("this period has not started", reason="period_not_started")
        kept = await self.ctx.db(self.store.versions, region_chain_key(code), parsed.key)
        if kept:
            raise Conflict("this report is closed already", reason="already_closed")
        return await self._close(p, parsed, code, "closed by the bureau", kept)

    async def correct(self, p: Principal, period: str, region: str | None, reason: str) -> Served:
        """A new version of a closed report on the ledger as it stands now, naming the
        figures that changed and why (the bureau). Refused when nothing changed."""
        require_bureau(p)
        parsed, code = self._parse(period, region)
        if not reason.strip():
            raise InvalidInput("a correction needs a reason", reason="reason_required")
        kept = await self.ctx.db(self.store.versions, region_chain_key(code), parsed.key)
        if not kept:
            raise Conflict("this report is not closed", reason="not_closed")
        return await self._close(p, parsed, code, reason.strip(), kept)

    async def _compute(self, period: Period, region: str | None, as_of: datetime) -> dict[str, Any]:
        return await self.ctx.db(
            compute, self.ctx.storage, self.ctx.settings, period, region, as_of
        )

    async def _close(
        self,
        p: Principal,
        period: Period,
        region: str | None,
        reason: str,
        kept: list[DispatchRecord],
    ) -> Served:
        key = region_chain_key(region)
        chain = dispatch_chain(region, period.key)
        async with self.ctx.lock(chain):
            now = self.ctx.clock()
            # A first close is cut at the period's end (or now, if earlier); a correction
            # reads the ledger as it stands.
            as_of = now if kept else min(now, period.end)
            body = await self._compute(period, region, as_of)
            text = canonical_json(body)
            digest = sha256_text(text)
            changes: list[dict[str, Any]] = []
            previous = kept[-1] if kept else None
            if previous is not None:
                changes = diff(json.loads(previous.body), body)
                if not changes:
                    raise Conflict(
                        "the report computed now has the same figures", reason="nothing_changed"
                    )
            version = previous.version + 1 if previous is not None else 1
            event = DispatchReportClosed(
                key,
                period.key,
                version,
                digest,
                as_of,
                reason,
                previous.sha256 if previous is not None else None,
                len(changes),
                p.actor,
                now,
            )
            # Keyed by version: two processes closing the same version record it once.
            appended, fresh = await self.ctx.db(
                self.ctx.storage.ledger.append_once,
                chain,
                f"version-{version}",
                [codec.encode(event)],
            )
            if not fresh:
                raise Conflict(
                    "this version was closed by another request", reason="already_closed"
                )
            ref = (appended[0].chain_id, appended[0].seq, appended[0].hash)
            try:
                record = await self.ctx.db(
                    self.store.add,
                    key,
                    period.key,
                    version,
                    text,
                    digest,
                    as_of,
                    reason,
                    canonical_json(changes),
                    p.actor,
                    now,
                    ref,
                )
            except Duplicate:
                raise Conflict("this version is kept already", reason="already_closed") from None
        return Served(body, digest, record, tuple(r.version for r in kept) + (version,))

    async def _served(self, record: DispatchRecord, kept: list[DispatchRecord]) -> Served:
        """A kept version, after checking it against its ledger event: the copy must
        hash to the SHA-256 the ledger (and so the seal) holds."""
        events = await self.ctx.db(
            self.ctx.storage.ledger.read_chain, record.chain_id, record.seq - 1, 1
        )
        recorded = None
        if events and events[0].hash == record.hash:
            decoded = codec.decode_payload(events[0].kind, events[0].payload)
            if isinstance(decoded, DispatchReportClosed):
                recorded = decoded.sha256
        if recorded is None or recorded != record.sha256 or sha256_text(record.body) != recorded:
            raise Conflict("the kept copy does not match the ledger", reason="stored_copy_altered")
        return Served(
            json.loads(record.body), record.sha256, record, tuple(r.version for r in kept)
        )
