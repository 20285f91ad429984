"""Occupation codes of the national occupational classification (中华人民共和国职业分类
大典, 2022 edition) and skill levels. Pure.

A code is `X-XX-XX-XX`: the major category (1..8), the middle category, the minor
category and the occupation, each a two-digit number (e.g. `6-18-02-04`). What is
checked: that format, and the major category 1..8. What is NOT checked: that the
occupation exists in the classification (its table is not shipped here).

Skill levels (`supervisor.ledger.records`): 5 = 五级/初级工 ... 1 = 一级/高级技师.
"""

from __future__ import annotations

import re

from supervisor.ledger.records import SKILL_LEVELS

INVALID_OCCUPATION_CODE = "invalid_occupation_code"
INVALID_SKILL_LEVEL = "invalid_skill_level"

_CODE = re.compile(r"[1-8]-[0-9]{2}-[0-9]{2}-[0-9]{2}")

# The national scheme's names of the levels, for pages.
LEVEL_NAMES: dict[int, str] = {
    5: "五级/初级工",
    4: "四级/中级工",
    3: "三级/高级工",
    2: "二级/技师",
    1: "一级/高级技师",
}


def occupation_problem(code: object) -> str | None:
    """Why `code` is not an occupation code of the 2022 classification, or None."""
    if not isinstance(code, str) or not code.isascii() or not _CODE.fullmatch(code):
        return "must be X-XX-XX-XX with a major category 1 to 8 (e.g. 6-18-02-04)"
    return None


def skill_level_problem(level: object) -> str | None:
    if type(level) is not int or level not in SKILL_LEVELS:
        return "must be an integer from 1 (一级/高级技师) to 5 (五级/初级工)"
    return None
