"""Resident ID numbers (GB 11643) and masking."""

from __future__ import annotations

from datetime import date

import pytest

from supervisor.registry.identity import (
    id_check_character,
    id_number_problem,
    mask_id_number,
    mask_name,
)

# The worked example of GB 11643-1999, appendix: check character X.
STANDARD_EXAMPLE = "11010519491231002X"


def test_the_standards_example_is_valid() -> None:
    assert id_check_character(STANDARD_EXAMPLE[:17]) == "X"
    assert id_number_problem(STANDARD_EXAMPLE) is None
    assert id_number_problem(STANDARD_EXAMPLE.lower()) is None


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("110105194912310021", "check character"),
        ("11010519491231002", "18 characters"),
        ("1101051949123100AX", "18 characters"),
        ("110105194902300028", "real date"),
        ("001105194912310021", "region"),
        ("110105299912310021", "out of range"),
    ],
)
def test_invalid_numbers_say_why(value: str, problem: str) -> None:
    found = id_number_problem(value, today=date(2026, 11, 25))
    assert found is not None and problem in found


def test_masking_keeps_four_and_four() -> None:
    assert mask_id_number(STANDARD_EXAMPLE) == "1101**********002X"
    assert mask_id_number("short") == "*****"
    assert mask_name("张三丰") == "张**"
