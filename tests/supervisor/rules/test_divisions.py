"""Division codes (GB/T 2260) and occupation codes: each rule refuses on its own."""

from __future__ import annotations

import pytest

from supervisor.rules.divisions import (
    PROVINCES,
    DivisionCodeError,
    division_problem,
    parse_division,
)
from supervisor.rules.occupations import occupation_problem, skill_level_problem


def test_the_34_provincial_level_divisions() -> None:
    assert len(PROVINCES) == 34
    assert PROVINCES["11"] == "北京" and PROVINCES["65"] == "新疆" and PROVINCES["82"] == "澳门"


def test_a_county_code_names_its_city_and_province() -> None:
    d = parse_division("440305")
    assert (d.level, d.province_code, d.province_name) == ("county", "440000", "广东")
    assert (d.city_code, d.county_code) == ("440300", "440305")
    assert d.province_key == "440000" and d.city_key == "440300"


def test_a_city_code_and_a_province_code() -> None:
    city = parse_division("510100")
    assert (city.level, city.city_code, city.county_code) == ("city", "510100", None)
    assert city.province_name == "四川"
    province = parse_division("110000")
    assert (province.level, province.city_code, province.county_code) == (
        "province",
        None,
        None,
    )
    # A municipality's districts sit under its "city" part 01.
    district = parse_division("110105")
    assert (district.level, district.city_key, district.province_key) == (
        "county",
        "110100",
        "110000",
    )


@pytest.mark.parametrize(
    ("code", "why"),
    [
        ("110000x", "six digits"),  # too long
        ("11000", "six digits"),  # too short
        ("11000a", "six digits"),  # not a digit
        ("１１００００", "six digits"),  # full-width digits are not ASCII digits
        ("", "six digits"),
        ("990101", "provincial-level"),  # no province 99
        ("100000", "provincial-level"),  # no province 10
        ("110001", "province's own code"),  # city part 00 with a county part
    ],
)
def test_each_rule_refuses_with_a_stable_reason(code: str, why: str) -> None:
    with pytest.raises(DivisionCodeError) as info:
        parse_division(code)
    assert info.value.reason == "invalid_division_code"
    assert why in str(info.value)
    assert division_problem(code) is not None


def test_a_non_string_is_refused() -> None:
    with pytest.raises(DivisionCodeError):
        parse_division(110000)  # type: ignore[arg-type]


@pytest.mark.parametrize("code", ["6-18-02-04", "1-01-00-01", "8-00-00-00", "4-03-02-01"])
def test_occupation_codes_of_the_2022_format(code: str) -> None:
    assert occupation_problem(code) is None


@pytest.mark.parametrize(
    "code",
    [
        "0-01-01-01",
        "9-01-01-01",
        "6-18-02",
        "6-18-02-04-01",
        "6180204",
        "6-1-02-04",
        "焊工",
        "６-18-02-04",
        "6-18-02-04\n",
        61802,
        None,
    ],
)
def test_other_occupation_codes_are_refused(code: object) -> None:
    assert occupation_problem(code) is not None


def test_skill_levels_one_to_five() -> None:
    assert all(skill_level_problem(n) is None for n in (1, 2, 3, 4, 5))
    assert all(skill_level_problem(n) is not None for n in (0, 6, True, 3.0, "3"))
