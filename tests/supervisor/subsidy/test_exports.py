"""Claims and the monthly report as files the bureau opens, through the real API: the
.xlsx opened back with openpyxl and read cell by cell, the CSV with its byte-order mark,
Chinese headers, 是/否 and no cell that a spreadsheet would run as a formula."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import openpyxl
import pytest

from storage.types import Role
from supervisor.subsidy.exports import FORMULA_TRIGGERS, safe_text
from tests.supervisor.conftest import Service, institution_body, new_id_number

# What issue 22 found raw in an export: a formula that opens a link, and DDE.
EVIL_COURSE = '=HYPERLINK("http://evil.example/","点我")'
EVIL_NAME = "=cmd|' /C calc'!A0"


def _claim(svc: Service) -> tuple[int, int, str]:
    """An institution whose course and learner carry formula-like names, the course
    published, the learner enrolled and assessed now: one claim (not eligible)."""
    r = svc.call("POST", "/api/v1/institutions", svc.admin, json=institution_body("+技校"))
    assert r.status_code == 201, r.text
    inst = r.json()["id"]
    operator = svc.token(Role.operator, inst)
    body = {"institution_id": inst, "name": EVIL_COURSE, "required_hours": 40}
    r = svc.call("POST", "/api/v1/courses", operator, json={**body, "delivery_mode": "online"})
    assert r.status_code == 201, r.text
    course = r.json()["id"]
    rules = {"occupation": "6-18-02-04", "skill_level": 4, "subsidy_kind": "per_learner"}
    # The bureau, not the institution, sets and publishes the subsidy standard.
    r = svc.call(
        "PUT", f"/api/v1/courses/{course}/rules", svc.bureau, json={**rules, "subsidy_amount": 1500}
    )
    assert r.status_code == 200, r.text
    assert svc.call("POST", f"/api/v1/courses/{course}/publish", svc.bureau).status_code == 200
    learner = {"institution_id": inst, "full_name": EVIL_NAME, "id_number": new_id_number()}
    r = svc.call("POST", "/api/v1/learners", operator, json=learner)
    assert r.status_code == 201, r.text
    lid = r.json()["id"]
    enrol = {"learner_ids": [lid]}
    r = svc.call("POST", f"/api/v1/courses/{course}/enrolments", operator, json=enrol)
    assert r.status_code == 201, r.text
    result = {"learner_id": lid, "passed": True, "score": 90}
    r = svc.call("POST", f"/api/v1/courses/{course}/assessments", operator, json=result)
    assert r.status_code == 201, r.text
    return inst, course, operator


def _period() -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "from": (now - timedelta(days=1)).isoformat(),
        "until": (now + timedelta(days=1)).isoformat(),
    }


def test_every_formula_trigger_is_neutralised() -> None:
    for trigger in FORMULA_TRIGGERS:
        assert safe_text(trigger + "1+1") == "'" + trigger + "1+1"
    assert safe_text("焊工 4 级") == "焊工 4 级" and safe_text("") == ""
    # Control characters a spreadsheet file cannot hold (rows stored before storage
    # refused them) are dropped, so one such name cannot break an export.
    assert safe_text("bad\x01name\x00") == "badname"
    assert safe_text("\x00=cmd") == "'=cmd"
    wb = openpyxl.Workbook()
    wb.active.cell(row=1, column=1, value=safe_text("a\x0bb"))  # would raise without


def test_claims_xlsx_and_csv_in_chinese_with_formulas_neutralised(service: Service) -> None:
    inst, course, operator = _claim(service)
    params = {**_period(), "institution_id": str(inst)}

    r = service.call("GET", "/api/v1/claims", operator, params={**params, "format": "xlsx"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert r.headers["content-disposition"].endswith('.xlsx"')
    ws = openpyxl.load_workbook(io.BytesIO(r.content)).active
    assert ws is not None and ws.title == "补贴申领"
    headers = [c.value for c in ws[1]]
    assert headers[:3] == ["机构编号", "课程编号", "课程"]
    assert "是否符合补贴条件" in headers and "补贴金额（元）" in headers
    assert "考核时间（UTC+8）" in headers
    row = {h: ws.cell(row=2, column=n + 1) for n, h in enumerate(headers)}
    # Formula-like text is stored as text, with the leading quote: nothing runs.
    assert row["课程"].value == "'" + EVIL_COURSE and row["课程"].data_type == "s"
    assert row["姓名"].value == "'" + EVIL_NAME and row["姓名"].data_type == "s"
    assert all(c.data_type != "f" for line in ws.iter_rows() for c in line)
    assert row["是否符合补贴条件"].value == "否"
    assert row["补贴金额（元）"].value == 0 and row["补贴金额（元）"].number_format == "#,##0.00"
    assert row["要求学时"].value == 40 and row["要求学时"].number_format == "0.00"
    assert "有效学时不足" in row["不符合原因"].value
    assessed = row["考核时间（UTC+8）"]
    assert isinstance(assessed.value, datetime) and assessed.number_format == "yyyy-mm-dd hh:mm"
    local_now = datetime.now(ZoneInfo("Asia/Shanghai")).replace(tzinfo=None)
    assert abs(assessed.value - local_now) < timedelta(minutes=10)  # Beijing time, not UTC
    assert "*" in row["身份证号（脱敏）"].value
    totals = [c.value for c in ws[3]]
    assert totals[0] == "合计" and totals[2] == "共 1 人申领" and totals[6] == "0 人符合"
    assert ws.max_row == 3

    r = service.call("GET", "/api/v1/claims", operator, params={**params, "format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.content.startswith(b"\xef\xbb\xbf")  # the byte-order mark Excel needs
    table = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    head, first, total = table[0], table[1], table[2]
    cell = dict(zip(head, first, strict=True))
    assert cell["课程"] == "'" + EVIL_COURSE and cell["姓名"] == "'" + EVIL_NAME
    assert cell["是否符合补贴条件"] == "否" and total[0] == "合计"
    assert not any(v.startswith(FORMULA_TRIGGERS) for line in table for v in line)

    # The English variant, by the request's language.
    r = service.client.get(
        "/api/v1/claims",
        params={**params, "format": "csv"},
        headers={"Authorization": f"Bearer {operator}", "Accept-Language": "en-GB,en;q=0.9"},
    )
    head, first = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))[:2]
    cell = dict(zip(head, first, strict=True))
    assert cell["Eligible for subsidy"] == "no" and cell["Course"] == "'" + EVIL_COURSE
    assert "Assessed at (UTC+8)" in head


def test_monthly_report_xlsx_and_csv(service: Service) -> None:
    inst, course, operator = _claim(service)
    inspector = service.token(Role.inspector)
    month = datetime.now(ZoneInfo(service.settings.subsidy.timezone)).strftime("%Y-%m")
    params = {"month": month, "institution_id": str(inst)}
    r = service.call(
        "GET", "/api/v1/reports/monthly", inspector, params={**params, "format": "xlsx"}
    )
    assert r.status_code == 200, r.text
    wb = openpyxl.load_workbook(io.BytesIO(r.content))
    assert wb.sheetnames == ["月度报表", "疑点", "说明"]
    ws = wb["月度报表"]
    headers = [c.value for c in ws[1]]
    row = {h: ws.cell(row=2, column=n + 1) for n, h in enumerate(headers)}
    assert row["月份"].value == month and row["培训机构"].value.startswith("'+技校 ")
    assert row["课程"].value == "'" + EVIL_COURSE and row["课程"].data_type == "s"
    assert row["机构状态"].value == "正常" and row["培训方式"].value == "线上"
    assert row["申领人数"].value == 1 and row["补贴金额（元）"].number_format == "#,##0.00"
    assert row["通过率"].value is None  # no checks: no rate, not 0 %
    total = {h: ws.cell(row=3, column=n + 1).value for n, h in enumerate(headers)}
    assert total["月份"] == "合计" and total["申领人数"] == 1 and total["符合条件人数"] == 0
    about = {r[0].value: r[1].value for r in wb["说明"].iter_rows(min_row=2)}
    # The month's bounds as a person reads them: local midnight, with the offset.
    assert about["起"] == f"{month}-01 00:00 (UTC+8)" and about["月份计算时区"] == "Asia/Shanghai"
    assert all(c.data_type != "f" for s in wb for line in s.iter_rows() for c in line)

    r = service.call(
        "GET", "/api/v1/reports/monthly", inspector, params={**params, "format": "csv"}
    )
    assert r.status_code == 200 and r.content.startswith(b"\xef\xbb\xbf")
    head, first = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))[:2]
    assert dict(zip(head, first, strict=True))["课程"] == "'" + EVIL_COURSE

    r = service.call(
        "GET", "/api/v1/reports/monthly", inspector, params={**params, "format": "html"}
    )
    assert r.status_code == 200 and 'lang="zh-CN"' in r.text
    assert f"{month}-01 00:00 (UTC+8)" in r.text and "月度报表" in r.text


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_an_operator_exports_only_their_institution(service: Service, fmt: str) -> None:
    inst, _, _ = _claim(service)
    other, _, other_operator = _claim(service)
    params = {**_period(), "institution_id": str(inst), "format": fmt}
    r = service.call("GET", "/api/v1/claims", other_operator, params=params)
    assert r.status_code == 403 and r.json()["reason"] == "other_institution"
    assert other != inst
