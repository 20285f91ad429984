"""Roster import through the real API on SQLite and PostgreSQL: files built with
openpyxl and csv (UTF-8 with and without BOM, GBK), a per-row report, nothing
registered from a file that fails, and bad files refused whole."""

from __future__ import annotations

import csv
import io
import zipfile
from typing import Any

import httpx
import openpyxl
import pytest

from storage.types import Role
from tests.supervisor.conftest import Service, World, new_id_number

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PATH = "/api/v1/institutions/{}/roster-import"


def xlsx(rows: list[list[Any]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def csv_bytes(rows: list[list[Any]], encoding: str = "utf-8-sig") -> bytes:
    text = io.StringIO()
    csv.writer(text).writerows(rows)
    return text.getvalue().encode(encoding)


def bad_check_digit(number: str) -> str:
    last = "0" if number[-1] != "0" else "1"
    return number[:-1] + last


def post(
    svc: Service,
    w: World,
    data: bytes,
    name: str = "roster.xlsx",
    token: str | None = None,
    **form: str,
) -> httpx.Response:
    files = {"file": (name, data, XLSX if name.endswith(".xlsx") else "text/csv")}
    return svc.call(
        "POST", PATH.format(w.institution_id), token or w.operator, files=files, data=form
    )


def learners(svc: Service, w: World) -> list[dict[str, Any]]:
    r = svc.call("GET", f"/api/v1/learners?institution_id={w.institution_id}", w.operator)
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()
    return found


def state(svc: Service, w: World) -> tuple[int, int]:
    return len(learners(svc, w)), svc.event_count()


def test_a_clean_workbook_is_checked_then_imported_and_enrolled(service: Service) -> None:
    w = service.world(enrol=False)
    ids = [new_id_number("19850101"), new_id_number("20000229")]
    book = xlsx(
        [
            ["序号", "姓名", "身份证号", "手机号"],
            [1, "张三", ids[0], "13800138000"],
            [2, "李四", ids[1].lower(), 13900139000],
        ]
    )
    before = state(service, w)
    r = post(service, w, book, mode="check")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["rows"], body["new"], body["errors"], body["imported"]) == (2, 2, 0, False)
    assert [x["row"] for x in body["report"]] == [2, 3]
    assert body["report"][0]["id_number_masked"] == ids[0][:4] + "*" * 10 + ids[0][-4:]
    assert body["report"][1]["phone_masked"] == "139****9000"
    assert body["ignored_columns"] == ["序号"]
    assert state(service, w) == before  # a check registers nobody

    r = post(service, w, book, course_id=str(w.course_id))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["imported"] is True and len(body["registered"]) == 2
    names = {lr["full_name"]: lr for lr in learners(service, w)}
    assert {"张三", "李四"} <= set(names)
    assert names["李四"]["id"] in body["registered"]
    # Two learners more; each enrolment on the course is one ledger event.
    assert state(service, w) == (before[0] + 2, before[1] + 2)
    r = service.call("GET", f"/api/v1/courses/{w.course_id}/enrolments", w.operator)
    assert r.status_code == 200, r.text
    assert set(body["registered"]) <= {e["learner_id"] for e in r.json()}

    # The same file again: the learners exist here, nobody is registered twice.
    again = post(service, w, book, mode="check")
    assert again.status_code == 200, again.text
    assert [x["status"] for x in again.json()["report"]] == ["existing", "existing"]
    r = post(service, w, book)
    assert r.status_code == 201 and r.json()["registered"] == []
    assert state(service, w) == (before[0] + 2, before[1] + 2)


@pytest.mark.parametrize(
    ("encoding", "header"),
    [
        ("utf-8-sig", ["姓名", "身份证号码", "联系电话"]),
        ("utf-8", ["姓名", "公民身份号码", "手机"]),
        ("gbk", ["姓名", "身份证号", "手机号"]),
        ("utf-8", ["Full name", "ID number", "Phone"]),
    ],
)
def test_csv_files_in_every_encoding_excel_writes(
    service: Service, encoding: str, header: list[str]
) -> None:
    w = service.world(enrol=False)
    number = new_id_number()
    data = csv_bytes([header, ["王小明", number, "+86 138 0013 8000"]], encoding)
    r = post(service, w, data, "roster.csv")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["file_format"] == "csv"
    assert body["encoding"] == ("gb18030" if encoding == "gbk" else "utf-8")
    assert body["report"][0]["full_name"] == "王小明"
    assert body["report"][0]["phone_masked"] == "138****8000"
    assert [lr["full_name"] for lr in learners(service, w)].count("王小明") == 1


def test_bad_rows_are_reported_and_nothing_is_imported_until_asked(service: Service) -> None:
    w = service.world(enrol=False)
    other = service.world(enrol=False)
    elsewhere = new_id_number()
    r = service.call(
        "POST",
        "/api/v1/learners",
        other.operator,
        json={"institution_id": other.institution_id, "full_name": "别处", "id_number": elsewhere},
    )
    assert r.status_code == 201, r.text
    good = [new_id_number(), new_id_number()]
    twice = new_id_number()
    book = xlsx(
        [
            ["姓名", "身份证号", "手机号"],
            ["好人甲", good[0], ""],  # row 2
            ["错位", bad_check_digit(new_id_number()), ""],  # 3
            ["数字", 110101199003071234, ""],  # 4: a number cell
            ["科学", "1.10101E+17", ""],  # 5: as Excel shows it
            ["公式", "=B2", ""],  # 6
            ["", new_id_number(), ""],  # 7: no name
            ["重复一", twice, ""],  # 8
            ["重复二", twice, ""],  # 9
            ["别处", elsewhere, ""],  # 10
            ["电话", new_id_number(), "12345"],  # 11
            ["好人乙", good[1], "13800138000"],  # 12
        ]
    )
    before = state(service, w)
    r = post(service, w, book, course_id=str(w.course_id))
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["reason"] == "roster_has_errors" and body["errors"] == 8
    report = {x["row"]: x for x in body["report"]["report"]}
    codes = {n: [p["code"] for p in x["problems"]] for n, x in report.items()}
    assert codes == {
        2: [],
        3: ["id_number_check_digit"],
        4: ["id_number_as_number"],
        5: ["id_number_scientific"],
        6: ["formula"],
        7: ["missing_name"],
        8: [],
        9: ["duplicate_in_file"],
        10: ["registered_elsewhere"],
        11: ["invalid_phone"],
        12: [],
    }
    assert report[9]["problems"][0]["other_row"] == 8
    # Nothing registered, no ledger event: the file failed.
    assert state(service, w) == before

    # Messages follow the request's language; codes stay English.
    r = service.client.post(
        PATH.format(w.institution_id),
        files={"file": ("roster.xlsx", book, XLSX)},
        data={"mode": "check"},
        headers={"Authorization": f"Bearer {w.operator}", "Accept-Language": "zh-CN"},
    )
    assert r.status_code == 200, r.text
    row5 = next(x for x in r.json()["report"] if x["row"] == 5)
    assert row5["problems"][0]["code"] == "id_number_scientific"
    assert "科学计数" in row5["problems"][0]["message"]

    # Only the clean rows, on request: rows 2, 8 and 12.
    r = post(service, w, book, mode="clean_only", course_id=str(w.course_id))
    assert r.status_code == 201, r.text
    assert len(r.json()["registered"]) == 3
    names = {lr["full_name"] for lr in learners(service, w)}
    assert {"好人甲", "重复一", "好人乙"} <= names and "错位" not in names
    assert state(service, w) == (before[0] + 3, before[1] + 3)


def _zip_bomb() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("xl/workbook.xml", "<workbook/>")
        z.writestr("xl/worksheets/sheet1.xml", b"\0" * (40 * 1024 * 1024))
    return out.getvalue()


def _xml_bomb() -> bytes:
    """A workbook whose sheet expands entities a billion times (the "billion laughs")."""
    book = xlsx([["姓名", "身份证号"], ["LAUGH", new_id_number()]])
    src = zipfile.ZipFile(io.BytesIO(book))
    entities = "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    )
    sheet = src.read("xl/worksheets/sheet1.xml").decode()
    sheet = sheet.replace(
        "<worksheet", f'<!DOCTYPE worksheet [<!ENTITY lol "lol">{entities}]><worksheet', 1
    ).replace("LAUGH", "&lol9;")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name in src.namelist():
            z.writestr(name, sheet if name == "xl/worksheets/sheet1.xml" else src.read(name))
    return out.getvalue()


def _docx() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("word/document.xml", "<document/>")
    return out.getvalue()


@pytest.mark.parametrize(
    ("case", "status", "reason"),
    [
        ("png", 415, "roster_not_a_spreadsheet"),
        ("binary", 415, "roster_not_a_spreadsheet"),
        ("xls", 415, "roster_not_a_spreadsheet"),
        ("docx", 415, "roster_not_a_spreadsheet"),
        ("broken_xlsx", 415, "roster_not_a_spreadsheet"),
        ("zip_bomb", 413, "roster_file_too_large"),
        ("xml_bomb", 415, "roster_not_a_spreadsheet"),
        ("huge", 413, "roster_file_too_large"),
        ("too_many_rows", 422, "roster_too_many_rows"),
        ("no_columns", 422, "roster_missing_column"),
        ("empty", 422, "roster_empty"),
        ("header_only", 422, "roster_empty"),
    ],
)
def test_bad_files_are_refused_whole(service: Service, case: str, status: int, reason: str) -> None:
    w = service.world(enrol=False)
    limits = service.settings.roster
    header = ["姓名", "身份证号"]
    files: dict[str, tuple[str, bytes]] = {
        "png": ("roster.xlsx", b"\x89PNG\r\n\x1a\n" + b"\0" * 64),
        "binary": ("roster.csv", bytes(range(256)) * 4),
        "xls": ("roster.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512),
        "docx": ("roster.xlsx", _docx()),
        "broken_xlsx": ("roster.xlsx", xlsx([header, ["甲", new_id_number()]])[:400]),
        "zip_bomb": ("roster.xlsx", _zip_bomb()),
        "xml_bomb": ("roster.xlsx", _xml_bomb()),
        "huge": ("roster.csv", csv_bytes([header]) + b"x" * limits.max_bytes),
        "too_many_rows": (
            "roster.csv",
            csv_bytes([header] + [["甲", "1"]] * (limits.max_rows + 1)),
        ),
        "no_columns": ("roster.csv", csv_bytes([["名单"], ["甲"]])),
        "empty": ("roster.csv", b""),
        "header_only": ("roster.xlsx", xlsx([header])),
    }
    name, data = files[case]
    before = state(service, w)
    r = post(service, w, data, name)
    assert r.status_code == status, r.text
    assert r.json()["reason"] == reason
    assert state(service, w) == before


def test_only_the_institutions_own_staff_import(service: Service) -> None:
    w = service.world(enrol=False)
    other = service.world(enrol=False)
    book = xlsx([["姓名", "身份证号"], ["甲", new_id_number()]])
    before = state(service, w)
    r = post(service, w, book, token=other.operator)
    assert r.status_code == 403 and r.json()["reason"] == "other_institution"
    r = post(service, w, book, token=service.token(Role.inspector))
    assert r.status_code == 403
    r = post(service, w, book, course_id=str(other.course_id))
    assert r.status_code in (403, 422), r.text
    assert state(service, w) == before
