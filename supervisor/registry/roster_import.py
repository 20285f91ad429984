"""Roster import: an institution's learners from an .xlsx or .csv file.

An operator uploads a file of learners (columns 姓名, 身份证号 and optionally 手机号
and 重点群体, or their English names). `read_roster` turns the bytes into rows, or refuses the whole
file (not a spreadsheet, too large, too many rows, no header with the needed
columns); `RosterImport.check` validates every row (the ID number's GB 11643 check
character, an ID number Excel turned into a number or into scientific notation, a
formula, a missing name, an ID number twice in the file or already registered) and
says what an import would do; `RosterImport.commit` registers the learners of a
clean report through `RegistryService.create_learner`, the one path by which a
learner is registered, or only the clean rows when asked to.

Nothing is registered from a report with a problem unless the clean rows alone are
asked for; the whole file is validated before the first learner is registered.

Parsing is CPU work on untrusted bytes: it runs in a worker thread (`ctx.db`), never
on the event loop. An .xlsx file is a ZIP: its unpacked size is bounded before any
part is read (`roster.max_unpacked_bytes`).
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final
from zoneinfo import ZoneInfo

from config.roster import RosterSettings
from storage.exceptions import StorageError
from storage.types import Learner
from supervisor.auth import Principal
from supervisor.context import Context
from supervisor.errors import Conflict, InvalidInput, ServiceError
from supervisor.i18n import N_
from supervisor.ledger.records import KEY_GROUPS
from supervisor.registry.identity import id_number_problem_code, normalise_id_number
from supervisor.registry.records import RecordsService
from supervisor.registry.service import RegistryService
from supervisor.registry.status import ensure_may_register


class Column(StrEnum):
    name = "name"
    id_number = "id_number"
    phone = "phone"
    groups = "groups"


# Header texts per column (compared without spaces, case-insensitive): the words
# Chinese offices put on such sheets first, then English.
HEADERS: Final[dict[Column, tuple[str, ...]]] = {
    Column.name: ("姓名", "学员姓名", "名字", "name", "fullname", "full_name", "learner"),
    Column.id_number: (
        "身份证号",
        "身份证号码",
        "身份证",
        "公民身份号码",
        "证件号码",
        "idnumber",
        "id_number",
        "id",
        "idcard",
        "residentid",
    ),
    Column.phone: ("手机号", "手机号码", "手机", "联系电话", "电话", "phone", "mobile", "tel"),
    Column.groups: ("重点群体", "人员类别", "群体", "groups", "keygroups", "key_groups"),
}
# The key groups a cell of the 重点群体 column may name (several, separated by 、，,;；/
# or spaces): the policy's Chinese names or the codes of `KEY_GROUPS`. A learner's
# groups from a file are recorded at import, `since` the import's local date, with the
# source `GROUP_SOURCE`.
GROUP_NAMES: Final[dict[str, str]] = {
    **{code: code for code in KEY_GROUPS},
    "农民工": "rural_migrant_worker",
    "两后生": "school_leaver",
    "下岗失业人员": "unemployed",
    "失业人员": "unemployed",
    "退役军人": "veteran",
    "就业困难人员": "employment_difficulty",
    "脱贫人口": "poverty_risk",
    "防止返贫监测对象": "poverty_risk",
    "企业职工": "enterprise_staff",
}
GROUP_SOURCE: Final = "roster import"
_GROUP_SPLIT = re.compile(r"[、，,;；/\s]+")
REQUIRED: Final = (Column.name, Column.id_number)
# Columns read from a sheet (more are ignored): a bound on work per row.
MAX_COLUMNS: Final = 64
NAME_MAX: Final = 100
_SCIENTIFIC = re.compile(r"^[+-]?\d+(?:\.\d*)?[eE][+-]?\d+$")
_PHONE = re.compile(r"^1\d{10}$")


# Per-row problems, by code, with the sentence a person reads (N_: translated where
# shown). `{row}` is another row of the file.
PROBLEMS: Final[dict[str, str]] = {
    "missing_name": N_("The name is missing."),
    "name_too_long": N_("The name is longer than 100 characters."),
    "missing_id_number": N_("The ID number is missing."),
    "id_number_as_number": N_(
        "The ID number is stored as a number, so Excel has dropped its last digits. "
        "Format the column as text and type the number again."
    ),
    "id_number_scientific": N_(
        "The ID number is in scientific notation (such as 1.10101E+17), so its last "
        "digits are lost. Format the column as text and type the number again."
    ),
    "id_number_format": N_("The ID number must be 17 digits followed by a digit or X."),
    "id_number_region": N_("The ID number's region code is not valid."),
    "id_number_birth_date": N_("The ID number's birth date is not a real date."),
    "id_number_birth_range": N_("The ID number's birth date is out of range."),
    "id_number_check_digit": N_("The ID number's check digit does not match: a digit is mistyped."),
    "duplicate_in_file": N_("The same ID number is already on row {row} of this file."),
    "registered_elsewhere": N_(
        "A learner with this ID number is registered at another institution."
    ),
    "invalid_phone": N_("The mobile number must be 11 digits starting with 1."),
    "invalid_group": N_(
        "The key group must be one of 农民工, 两后生, 下岗失业人员, 退役军人, 就业困难人员, "
        "脱贫人口 and 企业职工."
    ),
    "formula": N_("The cell holds a formula; enter the value itself."),
}


@dataclass(frozen=True, slots=True)
class RowProblem:
    column: str  # a Column value, or "row"
    code: str  # a key of PROBLEMS
    other_row: int | None = None  # for duplicate_in_file: the earlier row


class RowStatus(StrEnum):
    new = "new"  # would be registered
    existing = "existing"  # already registered at this institution: not registered again
    error = "error"


@dataclass(frozen=True, slots=True)
class RosterRow:
    """One learner row: `row` is the row number a spreadsheet shows (the header is
    row 1 when it is the first row). `id_number` is normalised, never shown unmasked."""

    row: int
    name: str
    id_number: str
    phone: str
    problems: tuple[RowProblem, ...] = ()
    existing_learner_id: int | None = None
    groups: tuple[str, ...] = ()  # codes of KEY_GROUPS, from the optional 重点群体 column

    @property
    def status(self) -> RowStatus:
        if self.problems:
            return RowStatus.error
        return RowStatus.new if self.existing_learner_id is None else RowStatus.existing


@dataclass(frozen=True, slots=True)
class RosterReport:
    institution_id: int
    file_format: str  # "xlsx" or "csv"
    encoding: str  # of a CSV file: "utf-8" or "gb18030"; "" for .xlsx
    header_row: int
    ignored_columns: tuple[str, ...]
    rows: tuple[RosterRow, ...]

    @property
    def clean(self) -> bool:
        return all(r.status is not RowStatus.error for r in self.rows)

    def count(self, status: RowStatus) -> int:
        return sum(1 for r in self.rows if r.status is status)


@dataclass(frozen=True, slots=True)
class ImportOutcome:
    report: RosterReport
    imported: bool
    # (row, learner) of each learner registered by this import, in file order.
    created: tuple[tuple[int, Learner], ...] = ()
    # Learners of clean rows (registered now or before), in file order.
    learner_ids: tuple[int, ...] = field(default=())


def _refused(message: str, reason: str, status: int = 422, **details: Any) -> ServiceError:
    err = InvalidInput(message, reason=reason, **details)
    err.status = status
    return err


# -- reading a file -------------------------------------------------------------------

_NOT_SPREADSHEETS: Final = (
    (b"\xd0\xcf\x11\xe0", "an old Excel (.xls) or other Office file; save it as .xlsx"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"Rar!", "a RAR archive"),
    (b"\x1f\x8b", "a gzip archive"),
)


@dataclass(frozen=True, slots=True)
class _Sheet:
    file_format: str
    encoding: str
    # (row number, cells) of every non-empty row; a cell is its value (str, int,
    # float, bool, datetime or None) or _Formula.
    rows: list[tuple[int, list[object]]]


@dataclass(frozen=True, slots=True)
class _Formula:
    text: str


def _nonempty(cells: Sequence[object]) -> bool:
    return any(c is not None and str(c).strip() != "" for c in cells)


def _read_xlsx(data: bytes, limits: RosterSettings) -> _Sheet:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            names = z.namelist()
            unpacked = sum(i.file_size for i in z.infolist())
    except (zipfile.BadZipFile, ValueError, OSError):
        raise _refused(
            "the file is not a spreadsheet (.xlsx or .csv)", "roster_not_a_spreadsheet", 415
        ) from None
    if "xl/workbook.xml" not in names:
        raise _refused(
            "the file is a ZIP archive but not an .xlsx workbook",
            "roster_not_a_spreadsheet",
            415,
        )
    if unpacked > limits.max_unpacked_bytes:
        raise _refused(
            f"the workbook unpacks to more than {limits.max_unpacked_bytes} bytes",
            "roster_file_too_large",
            413,
            limit_bytes=limits.max_unpacked_bytes,
        )
    import openpyxl  # only when an .xlsx arrives

    try:
        book = openpyxl.load_workbook(
            io.BytesIO(data), read_only=True, data_only=False, keep_links=False
        )
    except Exception:  # openpyxl raises many kinds on a broken workbook  # noqa: BLE001
        raise _refused(
            "the workbook cannot be read; save it again as .xlsx",
            "roster_not_a_spreadsheet",
            415,
        ) from None
    try:
        sheet = book.worksheets[0] if book.worksheets else None
        if sheet is None:
            raise _refused("the workbook has no sheet", "roster_empty")
        rows: list[tuple[int, list[object]]] = []
        for number, cells in enumerate(sheet.iter_rows(max_col=MAX_COLUMNS), start=1):
            values: list[object] = []
            for c in cells:
                value = getattr(c, "value", None)
                if getattr(c, "data_type", None) == "f" or (
                    isinstance(value, str) and value.startswith("=") and len(value) > 1
                ):
                    values.append(_Formula(str(value)))
                else:
                    values.append(value)
            if not _nonempty(values):
                continue
            rows.append((number, values))
            if len(rows) > limits.max_rows + 1:
                raise _too_many(limits)
    except ServiceError:
        raise
    except Exception:  # a part that does not parse  # noqa: BLE001
        raise _refused(
            "the workbook cannot be read; save it again as .xlsx",
            "roster_not_a_spreadsheet",
            415,
        ) from None
    finally:
        book.close()
    return _Sheet("xlsx", "", rows)


def _too_many(limits: RosterSettings) -> ServiceError:
    return _refused(
        f"the file has more than {limits.max_rows} learner rows; split it",
        "roster_too_many_rows",
        limit=limits.max_rows,
    )


def _read_csv(data: bytes, limits: RosterSettings) -> _Sheet:
    if b"\x00" in data:
        raise _refused(
            "the file is not a spreadsheet (.xlsx or .csv)", "roster_not_a_spreadsheet", 415
        )
    text: str | None = None
    encoding = ""
    # UTF-8 (with or without the BOM Excel writes), else GB18030, the superset of GBK
    # that Excel on a Chinese Windows saves "CSV" in.
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    if text is None:
        raise _refused(
            "the file is not text in UTF-8 or GBK, so not a CSV file",
            "roster_not_a_spreadsheet",
            415,
        )
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(
            text[:4096], delimiters=",;\t"
        )
    except csv.Error:
        dialect = csv.excel
    rows: list[tuple[int, list[object]]] = []
    try:
        reader = csv.reader(io.StringIO(text, newline=""), dialect)
        for number, record in enumerate(reader, start=1):
            values: list[object] = []
            for v in record[:MAX_COLUMNS]:
                # A CSV cell Excel would evaluate when the file is opened.
                values.append(_Formula(v) if v.startswith("=") and len(v) > 1 else v)
            if not _nonempty(values):
                continue
            rows.append((number, values))
            if len(rows) > limits.max_rows + 1:
                raise _too_many(limits)
    except csv.Error:
        raise _refused(
            "the file is not a well-formed CSV file", "roster_not_a_spreadsheet", 415
        ) from None
    return _Sheet("csv", "utf-8" if encoding == "utf-8-sig" else encoding, rows)


def _read(data: bytes, limits: RosterSettings) -> _Sheet:
    if len(data) > limits.max_bytes:
        raise _refused(
            f"a roster file may be at most {limits.max_bytes} bytes",
            "roster_file_too_large",
            413,
            limit_bytes=limits.max_bytes,
        )
    if not data.strip():
        raise _refused("the file is empty", "roster_empty")
    if data.startswith(b"PK\x03\x04"):
        return _read_xlsx(data, limits)
    for magic, what in _NOT_SPREADSHEETS:
        if data.startswith(magic):
            raise _refused(
                f"the file is {what}, not a spreadsheet (.xlsx or .csv)",
                "roster_not_a_spreadsheet",
                415,
            )
    return _read_csv(data, limits)


def _header_key(value: object) -> str:
    return re.sub(r"[\s_\-:：*（）()]", "", str(value or "")).lower()


_HEADER_INDEX: Final = {
    _header_key(text): column for column, texts in HEADERS.items() for text in texts
}


@dataclass(frozen=True, slots=True)
class _Layout:
    header_row: int
    columns: dict[Column, int]
    ignored: tuple[str, ...]


def _layout(sheet: _Sheet) -> _Layout:
    """The header: the first non-empty row; it must name the name and ID columns."""
    if not sheet.rows:
        raise _refused("the file has no rows", "roster_empty")
    number, cells = sheet.rows[0]
    columns: dict[Column, int] = {}
    ignored: list[str] = []
    for i, cell in enumerate(cells):
        text = "" if isinstance(cell, _Formula) else str(cell or "").strip()
        column = _HEADER_INDEX.get(_header_key(text))
        if column is not None and column not in columns:
            columns[column] = i
        elif text:
            ignored.append(text[:40])
    missing = [c.value for c in REQUIRED if c not in columns]
    if missing:
        raise _refused(
            "the first row must name the columns 姓名 (name) and 身份证号 (ID number); "
            f"missing: {', '.join(missing)}",
            "roster_missing_column",
            missing=missing,
        )
    return _Layout(number, columns, tuple(ignored))


# -- validating rows ------------------------------------------------------------------


def _cell(cells: Sequence[object], index: int | None) -> object:
    if index is None or index >= len(cells):
        return None
    return cells[index]


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return " ".join(str(value).split())


def _row(number: int, cells: Sequence[object], layout: _Layout, today: Any) -> RosterRow:
    problems: list[RowProblem] = []
    name_cell = _cell(cells, layout.columns[Column.name])
    id_cell = _cell(cells, layout.columns[Column.id_number])
    phone_cell = _cell(cells, layout.columns.get(Column.phone))
    groups_cell = _cell(cells, layout.columns.get(Column.groups))

    name = ""
    if isinstance(name_cell, _Formula):
        problems.append(RowProblem(Column.name, "formula"))
    else:
        name = _text(name_cell)
        if not name:
            problems.append(RowProblem(Column.name, "missing_name"))
        elif len(name) > NAME_MAX:
            problems.append(RowProblem(Column.name, "name_too_long"))
            name = name[:NAME_MAX]

    id_number = ""
    if isinstance(id_cell, _Formula):
        problems.append(RowProblem(Column.id_number, "formula"))
    elif isinstance(id_cell, bool):
        problems.append(RowProblem(Column.id_number, "id_number_format"))
    elif isinstance(id_cell, int | float):
        # A number cell cannot hold 18 digits exactly (a double keeps 15 to 17): the
        # last digits are already gone, whatever the cell shows.
        problems.append(RowProblem(Column.id_number, "id_number_as_number"))
    else:
        raw = _text(id_cell).replace(" ", "")
        if not raw:
            problems.append(RowProblem(Column.id_number, "missing_id_number"))
        elif _SCIENTIFIC.match(raw):
            problems.append(RowProblem(Column.id_number, "id_number_scientific"))
        else:
            # Excel's text prefix (') and full-width digits and X typed on a Chinese IME.
            raw = raw.lstrip("'").translate(_FULL_WIDTH)
            code = id_number_problem_code(raw, today)
            if code is not None:
                problems.append(RowProblem(Column.id_number, f"id_number_{code}"))
            else:
                id_number = normalise_id_number(raw)

    phone = ""
    if isinstance(phone_cell, _Formula):
        problems.append(RowProblem(Column.phone, "formula"))
    elif phone_cell is not None:
        phone = _text(phone_cell).replace(" ", "").replace("-", "").translate(_FULL_WIDTH)
        for prefix in ("+86", "0086"):
            if phone.startswith(prefix):
                phone = phone[len(prefix) :]
        if phone and not _PHONE.match(phone):
            problems.append(RowProblem(Column.phone, "invalid_phone"))

    groups: list[str] = []
    if isinstance(groups_cell, _Formula):
        problems.append(RowProblem(Column.groups, "formula"))
    elif groups_cell is not None:
        for word in _GROUP_SPLIT.split(_text(groups_cell)):
            if not word:
                continue
            code = GROUP_NAMES.get(word)
            if code is None:
                problems.append(RowProblem(Column.groups, "invalid_group"))
                break
            if code not in groups:
                groups.append(code)
    return RosterRow(number, name, id_number, phone, tuple(problems), groups=tuple(groups))


_FULL_WIDTH: Final = str.maketrans("０１２３４５６７８９Ｘｘ＋", "0123456789XX+")


def read_roster(
    data: bytes, limits: RosterSettings, institution_id: int, today: Any
) -> tuple[RosterReport, dict[str, int]]:
    """Parse and validate a file on its own (no database): the report without the
    checks against registered learners, and each clean row's ID number -> row.

    Raises a `ServiceError` that refuses the whole file (reasons `roster_file_too_large`,
    `roster_not_a_spreadsheet`, `roster_empty`, `roster_too_many_rows`,
    `roster_missing_column`). CPU work: call it in a worker thread."""
    sheet = _read(data, limits)
    layout = _layout(sheet)
    body = sheet.rows[1:]
    if not body:
        raise _refused("the file has a header but no learner rows", "roster_empty")
    if len(body) > limits.max_rows:
        raise _too_many(limits)
    rows: list[RosterRow] = []
    seen: dict[str, int] = {}
    for number, cells in body:
        row = _row(number, cells, layout, today)
        if row.id_number:
            first = seen.get(row.id_number)
            if first is not None:
                row = _with(row, RowProblem(Column.id_number, "duplicate_in_file", first))
            else:
                seen[row.id_number] = number
        rows.append(row)
    report = RosterReport(
        institution_id,
        sheet.file_format,
        sheet.encoding,
        layout.header_row,
        layout.ignored,
        tuple(rows),
    )
    return report, seen


def _with(row: RosterRow, problem: RowProblem) -> RosterRow:
    return RosterRow(
        row.row,
        row.name,
        row.id_number,
        row.phone,
        row.problems + (problem,),
        row.existing_learner_id,
        row.groups,
    )


def _existing(row: RosterRow, learner_id: int) -> RosterRow:
    return RosterRow(
        row.row, row.name, row.id_number, row.phone, row.problems, learner_id, row.groups
    )


# -- the service ----------------------------------------------------------------------


class RosterImport:
    """Roster import for an institution's operators (and admins), through the registry."""

    def __init__(self, ctx: Context, registry: RegistryService) -> None:
        self.ctx = ctx
        self.registry = registry

    async def check(self, p: Principal, institution_id: int, data: bytes) -> RosterReport:
        """The validation report of a file: every row with its problems, or the
        learner it would register, or the learner already registered here."""
        await self.ctx.db(self.ctx.storage.registry.get_institution, institution_id)
        await ensure_may_register(self.ctx, p, institution_id)
        report, seen = await self.ctx.db(
            read_roster,
            data,
            self.ctx.settings.roster,
            institution_id,
            self.ctx.clock().date(),
        )
        if not seen:
            return report
        # ID numbers are unique across institutions; a learner of another institution
        # is named by no id or name, only refused.
        registered = await self.ctx.db(self.ctx.storage.registry.list_learners, None)
        by_number = {lr.id_number: lr for lr in registered if lr.id_number in seen}
        rows: list[RosterRow] = []
        for row in report.rows:
            found = by_number.get(row.id_number) if row.id_number else None
            if found is None or seen.get(row.id_number) != row.row:
                rows.append(row)
            elif found.institution_id != institution_id:
                rows.append(_with(row, RowProblem(Column.id_number, "registered_elsewhere")))
            else:
                rows.append(_existing(row, found.id))
        return RosterReport(
            report.institution_id,
            report.file_format,
            report.encoding,
            report.header_row,
            report.ignored_columns,
            tuple(rows),
        )

    async def commit(self, p: Principal, report: RosterReport, only_clean: bool) -> ImportOutcome:
        """Register the new learners of `report`: all of them when it is clean; only
        the clean rows when `only_clean`; none otherwise (409 `roster_has_errors`)."""
        if not report.clean and not only_clean:
            raise Conflict(
                f"{report.count(RowStatus.error)} rows of the file have problems; nothing "
                "was imported. Correct them, or import only the clean rows",
                reason="roster_has_errors",
                errors=report.count(RowStatus.error),
            )
        created: list[tuple[int, Learner]] = []
        ids: list[int] = []
        for row in report.rows:
            if row.status is RowStatus.error:
                continue
            if row.existing_learner_id is not None:
                ids.append(row.existing_learner_id)
                continue
            try:
                learner = await self.registry.create_learner(
                    p, report.institution_id, row.name, row.id_number
                )
            except (ServiceError, StorageError) as exc:
                # Registered by someone else since the check: what this import did so
                # far stands (each learner is its own record), and the rest is refused.
                raise Conflict(
                    f"row {row.row} could not be registered ({exc}); "
                    f"{len(created)} learners of earlier rows were registered",
                    reason="roster_import_interrupted",
                    row=row.row,
                    registered=len(created),
                ) from None
            created.append((row.row, learner))
            ids.append(learner.id)
        await self._record_groups(p, report)
        return ImportOutcome(report, True, tuple(created), tuple(ids))

    async def _record_groups(self, p: Principal, report: RosterReport) -> None:
        """The key groups of the file's rows (new and existing learners alike), each not
        yet held recorded as `learner_group_added`, since today (local)."""
        if not any(row.groups for row in report.rows):
            return
        records = RecordsService(self.ctx)
        zone = ZoneInfo(self.ctx.settings.subsidy.timezone)
        today = self.ctx.clock().astimezone(zone).date().isoformat()
        learners = {
            lr.id_number: lr.id
            for lr in await self.ctx.db(
                self.ctx.storage.registry.list_learners, report.institution_id
            )
        }
        for row in report.rows:
            learner_id = learners.get(row.id_number)
            if row.status is RowStatus.error or not row.groups or learner_id is None:
                continue
            held = {g.group for g in await records.groups_of(learner_id)}
            for group in row.groups:
                if group not in held:
                    await records.add_group(p, learner_id, group, today, GROUP_SOURCE)
