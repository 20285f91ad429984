"""Real-name identity numbers: validation and masking.

Resident identity numbers follow GB 11643-1999: 6-digit region code, 8-digit
birth date (YYYYMMDD), 3-digit sequence, and a check character computed with
ISO 7064 MOD 11-2 ('X' stands for 10).
"""

from __future__ import annotations

import re
from datetime import date

_ID_RE = re.compile(r"^\d{17}[\dX]$")
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"


def id_check_character(first17: str) -> str:
    """The GB 11643 check character of the first 17 digits."""
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK[total % 11]


def normalise_id_number(raw: str) -> str:
    """Strip spaces and upper-case a trailing 'x'."""
    return raw.strip().replace(" ", "").upper()


# Why an ID number is refused, by code (the roster import reports these per row).
ID_PROBLEMS: dict[str, str] = {
    "format": "must be 17 digits followed by a digit or X (18 characters)",
    "region": "region code is not valid",
    "birth_date": "birth date part is not a real date",
    "birth_range": "birth date part is out of range",
    "check_digit": "check character does not match (GB 11643)",
}


def id_number_problem_code(raw: str, today: date | None = None) -> str | None:
    """The code (a key of `ID_PROBLEMS`) of why `raw` is not a valid resident ID
    number, or None if it is."""
    value = normalise_id_number(raw)
    if not _ID_RE.match(value):
        return "format"
    if value[:2] == "00":
        return "region"
    try:
        born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return "birth_date"
    if born.year < 1900 or born > (today or date.today()):
        return "birth_range"
    if id_check_character(value[:17]) != value[17]:
        return "check_digit"
    return None


def id_number_problem(raw: str, today: date | None = None) -> str | None:
    """Why `raw` is not a valid resident ID number, or None if it is."""
    code = id_number_problem_code(raw, today)
    return None if code is None else ID_PROBLEMS[code]


def mask_id_number(value: str) -> str:
    """Keep the first 4 and last 4 characters: 1101**********123X."""
    if len(value) <= 8:
        return "*" * len(value)
    return value[:4] + "*" * (len(value) - 8) + value[-4:]


def mask_name(full_name: str) -> str:
    """Keep the first character of a name: 张** / J*** (for public listings)."""
    name = full_name.strip()
    if len(name) <= 1:
        return name
    return name[0] + "*" * (len(name) - 1)
