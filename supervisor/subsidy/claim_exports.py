"""The payment file of claim review as a table for `supervisor.subsidy.exports.Writer`
(CSV or xlsx, formula cells neutralised): one row per paid line, then the totals.
Bureau only; names in full as in the claims export, ID numbers masked as in every
export of the service."""

from __future__ import annotations

from collections.abc import Sequence

from supervisor.i18n import N_, Translator
from supervisor.subsidy.claims import PaymentRow
from supervisor.subsidy.exports import COUNT, HOURS, YUAN, Column, Table

PAYMENT_COLUMNS = (
    Column(N_("Payment export")),
    Column(N_("Claim id"), COUNT),
    Column(N_("Institution id"), COUNT),
    Column(N_("Institution")),
    Column(N_("Period from ({zone})")),
    Column(N_("Period until ({zone})")),
    Column(N_("Course id"), COUNT),
    Column(N_("Course")),
    Column(N_("Learner id"), COUNT),
    Column(N_("Name")),
    Column(N_("ID number (masked)")),
    Column(N_("Credited hours"), HOURS),
    Column(N_("Subsidy (yuan)"), YUAN),
)


def payment_table(rows: Sequence[PaymentRow], t: Translator) -> Table:
    out = tuple(
        (
            r.export_id,
            r.claim_id,
            r.institution_id,
            r.institution,
            r.period_start,
            r.period_end,
            r.course_id,
            r.course_name,
            r.learner_id,
            r.learner_name,
            r.id_number_masked,
            round(r.credited_hours, 2),
            r.amount,
        )
        for r in rows
    )
    totals = (
        t(N_("Total")),
        t(N_("{n} claims"), n=len({r.claim_id for r in rows})),
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        round(sum(r.credited_hours for r in rows), 2),
        round(sum(r.amount for r in rows), 2),
    )
    return Table(N_("Subsidy payments"), PAYMENT_COLUMNS, out, totals)
