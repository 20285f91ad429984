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
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from config import Settings
from storage import Storage
from storage.canonical import canonical_json
from storage.exceptions import Duplicate
from storage.types import DispatchRecord, LedgerEvent
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

log = logging.getLogger(__name__)


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


def read_kept(
    storage: Storage, region_key: str, period: str, version: int | None = None
) -> tuple[Served | None, list[DispatchRecord]]:
    """The kept version of a report (the latest, or `version`), checked against its
    ledger event: the copy must hash to the SHA-256 the ledger (and so the seal)
    holds (blocking). (None, []) when the report was never closed; (None, kept) when
    `version` is not kept."""
    kept = storage.dispatch.versions(region_key, period)
    if not kept:
        return None, kept
    found = [r for r in kept if r.version == version] if version is not None else kept[-1:]
    if not found:
        return None, kept
    record = found[0]
    events = storage.ledger.read_chain(record.chain_id, record.seq - 1, 1)
    recorded = None
    if events and events[0].hash == record.hash:
        decoded = codec.decode_payload(events[0].kind, events[0].payload)
        if isinstance(decoded, DispatchReportClosed):
            recorded = decoded.sha256
    if recorded is None or recorded != record.sha256 or sha256_text(record.body) != recorded:
        raise Conflict("the kept copy does not match the ledger", reason="stored_copy_altered")
    versions = tuple(r.version for r in kept)
    return Served(json.loads(record.body), record.sha256, record, versions), kept


def keep(
    storage: Storage,
    period: Period,
    region: str | None,
    body: dict[str, Any],
    as_of: datetime,
    reason: str,
    previous: DispatchRecord | None,
    actor: str,
    now: datetime,
) -> tuple[DispatchRecord, str]:
    """Close a version of a report (blocking): its SHA-256 appended to the ledger
    (keyed by version, so two writers of one version record it once), then the copy
    kept under that event. Returns the record and the canonical text."""
    key = region_chain_key(region)
    text = canonical_json(body)
    digest = sha256_text(text)
    changes: list[dict[str, Any]] = []
    if previous is not None:
        changes = diff(json.loads(previous.body), body)
        if not changes:
            raise Conflict("the report computed now has the same figures", reason="nothing_changed")
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
        actor,
        now,
    )
    chain = dispatch_chain(region, period.key)
    appended, fresh = storage.ledger.append_once(chain, f"version-{version}", [codec.encode(event)])
    if not fresh:
        raise Conflict("this version was closed by another request", reason="already_closed")
    try:
        record = _keep_copy(storage, event, appended[0], text, changes)
    except Duplicate:
        raise Conflict("this version is kept already", reason="already_closed") from None
    return record, text


def _keep_copy(
    storage: Storage,
    event: DispatchReportClosed,
    stored: LedgerEvent,
    text: str,
    changes: list[dict[str, Any]],
) -> DispatchRecord:
    """The copy of a closed version kept under its ledger event (`stored`), with the
    facts the event records; raises `Duplicate` when that version is kept already."""
    return storage.dispatch.add(
        event.region,
        event.period,
        event.version,
        text,
        event.sha256,
        event.as_of,
        event.reason,
        canonical_json(changes),
        event.closed_by,
        event.at,
        (stored.chain_id, stored.seq, stored.hash),
    )


def repair(
    storage: Storage,
    settings: Settings,
    period: Period,
    region: str | None,
    kept: list[DispatchRecord],
) -> DispatchRecord | None:
    """The version after the kept ones whose ledger event was appended but whose copy
    was never kept (the process stopped, or the database refused the row, between the
    two steps of `keep`), recomputed as of the cut its event names and kept now
    (blocking). None when there is no such version. The copy is kept only if it hashes
    to the SHA-256 the ledger recorded; otherwise `dispatch_copy_lost` (409): the
    ledger before that cut changed, which the seals will show."""
    previous = kept[-1] if kept else None
    version = previous.version + 1 if previous is not None else 1
    found = storage.ledger.find_once(dispatch_chain(region, period.key), f"version-{version}")
    if found is None:
        return None
    event = codec.decode(found)
    if not isinstance(event, DispatchReportClosed) or event.version != version:
        raise Conflict("the report's chain holds an unexpected event", reason="dispatch_copy_lost")
    body = compute(storage, settings, period, region, event.as_of)
    text = canonical_json(body)
    digest = sha256_text(text)
    if digest != event.sha256:
        log.error(
            "dispatch report %s %s version %d: the copy was not kept and the recomputation "
            "does not hash to the ledger's SHA-256 (%s, not %s)",
            region_chain_key(region), period.key, version, digest, event.sha256,
        )  # fmt: skip
        raise Conflict(
            f"version {version} of this report was closed but its copy was not kept, and "
            "it cannot be recomputed to the same figures",
            reason="dispatch_copy_lost",
        )
    changes = diff(json.loads(previous.body), body) if previous is not None else []
    try:
        return _keep_copy(storage, event, found, text, changes)
    except Duplicate:
        return None  # kept meanwhile by another process


class DispatchService:
    """Reading, closing and correcting dispatch reports (bureau, inspectors, admins)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

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

    async def _kept(
        self, period: Period, region: str | None, version: int | None = None
    ) -> tuple[Served | None, list[DispatchRecord]]:
        return await self.ctx.db(
            read_kept, self.ctx.storage, region_chain_key(region), period.key, version
        )

    async def report(
        self, p: Principal, period: str, region: str | None, version: int | None = None
    ) -> Served:
        """The kept version (the latest, or `version`) of a closed period; a period
        past its grace is closed now; an open one is computed."""
        require_role(p, *READ_ALL)
        parsed, code = self._parse(period, region)
        served, kept = await self._kept(parsed, code, version)
        if served is not None:
            return served
        if version is not None:
            raise UnknownId(f"no version {version} of this report", reason="unknown_version")
        now = self.ctx.clock()
        grace = timedelta(days=self.ctx.settings.subsidy.dispatch_close_grace_days)
        if now >= parsed.end + grace:
            try:
                # Closed by the service's rule, not by the reader who happened to ask.
                return await self._close("system:grace", parsed, code, "closed: grace passed")
            except Conflict:  # closed by another request meanwhile: serve what it kept
                served, _ = await self._kept(parsed, code)
                if served is None:
                    raise
                return served
        body = await self._compute(parsed, code, min(now, parsed.end))
        return Served(body, sha256_text(canonical_json(body)))

    async def close(self, p: Principal, period: str, region: str | None) -> Served:
        """Close a period now (the bureau): computed on the ledger as it stands (cut at
        the period's end if that is past), kept and sealed."""
        require_bureau(p)
        parsed, code = self._parse(period, region)
        if self.ctx.clock() < parsed.start:
            raise Conflict("this period has not started", reason="period_not_started")
        return await self._close(p.actor, parsed, code, "closed by the bureau")

    async def correct(self, p: Principal, period: str, region: str | None, reason: str) -> Served:
        """A new version of a closed report on the ledger as it stands now, naming the
        figures that changed and why (the bureau). Refused when nothing changed."""
        require_bureau(p)
        parsed, code = self._parse(period, region)
        if not reason.strip():
            raise InvalidInput("a correction needs a reason", reason="reason_required")
        return await self._close(p.actor, parsed, code, reason.strip(), correction=True)

    async def _compute(self, period: Period, region: str | None, as_of: datetime) -> dict[str, Any]:
        return await self.ctx.db(
            compute, self.ctx.storage, self.ctx.settings, period, region, as_of
        )

    async def _close(
        self,
        actor: str,
        period: Period,
        region: str | None,
        reason: str,
        correction: bool = False,
    ) -> Served:
        async with self.ctx.lock(dispatch_chain(region, period.key)):
            kept = await self.ctx.db(
                self.ctx.storage.dispatch.versions, region_chain_key(region), period.key
            )
            # A version closed on the ledger whose copy was not kept is kept first, so
            # that the period is never stuck on a version number already used.
            repaired = await self.ctx.db(
                repair, self.ctx.storage, self.ctx.settings, period, region, list(kept)
            )
            if repaired is not None:
                log.warning(
                    "dispatch report %s %s: version %d kept after its close was interrupted",
                    region_chain_key(region), period.key, repaired.version,
                )  # fmt: skip
                kept = [*kept, repaired]
            if correction and not kept:
                raise Conflict("this report is not closed", reason="not_closed")
            if not correction and kept:
                raise Conflict("this report is closed already", reason="already_closed")
            now = self.ctx.clock()
            # A first close is cut at the period's end (or now, if earlier); a correction
            # reads the ledger as it stands.
            as_of = now if kept else min(now, period.end)
            body = await self._compute(period, region, as_of)
            record, _ = await self.ctx.db(
                keep,
                self.ctx.storage,
                period,
                region,
                body,
                as_of,
                reason,
                kept[-1] if kept else None,
                actor,
                now,
            )
        versions = tuple(r.version for r in kept) + (record.version,)
        return Served(body, record.sha256, record, versions)
