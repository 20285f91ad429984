"""Administrative-division codes (GB/T 2260): validation and the province, city and
county a code names. Pure; no network and no copied dataset.

A code is six ASCII digits `PPCCXX`: `PP` the province, `CC` the city (prefecture)
within it, `XX` the county (district) within the city.

What is checked:

- the format: exactly six digits 0-9;
- the province prefix `PP`: one of the 34 provincial-level divisions (`PROVINCES`);
- the structure: city part `00` means the province itself, and then the county part
  must be `00` too (`110001` is refused); county part `00` means the city itself.

What is NOT checked: that the city or county exists, nor its name. That needs the
national register (which changes every year, with codes retired and re-used), which
this service does not ship; so `990101` is refused (no province 99) but `110199` is
accepted although no such district exists. The bureau answers for the code it
records; the derived province name is always known.

Roll-up keys (`Division.province_key`, `city_key`) are the codes of the province and
the city a code belongs to: first 2 digits + "0000", first 4 + "00".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# The 34 provincial-level divisions (GB/T 2260), by the first two digits of the code.
PROVINCES: dict[str, str] = {
    "11": "北京",
    "12": "天津",
    "13": "河北",
    "14": "山西",
    "15": "内蒙古",
    "21": "辽宁",
    "22": "吉林",
    "23": "黑龙江",
    "31": "上海",
    "32": "江苏",
    "33": "浙江",
    "34": "安徽",
    "35": "福建",
    "36": "江西",
    "37": "山东",
    "41": "河南",
    "42": "湖北",
    "43": "湖南",
    "44": "广东",
    "45": "广西",
    "46": "海南",
    "50": "重庆",
    "51": "四川",
    "52": "贵州",
    "53": "云南",
    "54": "西藏",
    "61": "陕西",
    "62": "甘肃",
    "63": "青海",
    "64": "宁夏",
    "65": "新疆",
    "71": "台湾",
    "81": "香港",
    "82": "澳门",
}

INVALID_DIVISION_CODE = "invalid_division_code"

Level = Literal["province", "city", "county"]


class DivisionCodeError(ValueError):
    """A code that is not a valid GB/T 2260 division code; `reason` is stable."""

    reason = INVALID_DIVISION_CODE

    def __init__(self, code: object, problem: str) -> None:
        super().__init__(f"administrative-division code {code!r}: {problem}")
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Division:
    """What a valid code names. `city_code` is None for a province's own code,
    `county_code` None for a province's or a city's own code."""

    code: str
    level: Level
    province_code: str  # six digits, e.g. "110000"
    province_name: str  # e.g. "北京"
    city_code: str | None
    county_code: str | None

    @property
    def province_key(self) -> str:
        return self.province_code

    @property
    def city_key(self) -> str | None:
        """The city a county or city belongs to (None for a province's own code)."""
        return self.city_code


def parse_division(code: str) -> Division:
    """The division a six-digit GB/T 2260 code names; raises `DivisionCodeError`
    (reason `invalid_division_code`) for anything else (see the module's note)."""
    if not isinstance(code, str) or len(code) != 6 or not all("0" <= c <= "9" for c in code):
        raise DivisionCodeError(code, "must be exactly six digits")
    prefix, city, county = code[:2], code[2:4], code[4:]
    name = PROVINCES.get(prefix)
    if name is None:
        raise DivisionCodeError(code, f"{prefix} is not a provincial-level division")
    province_code = prefix + "0000"
    if city == "00":
        if county != "00":
            raise DivisionCodeError(
                code, "a province's own code (city part 00) must end in 00 as well"
            )
        return Division(code, "province", province_code, name, None, None)
    city_code = code[:4] + "00"
    if county == "00":
        return Division(code, "city", province_code, name, city_code, None)
    return Division(code, "county", province_code, name, city_code, code)


def division_problem(code: str) -> str | None:
    """Why `code` is refused, or None for a valid code."""
    try:
        parse_division(code)
    except DivisionCodeError as exc:
        return exc.problem
    return None
