"""The unified social credit code of organisations (GB 32100-2015).

18 characters from "0123456789ABCDEFGHJKLMNPQRTUWXY" (no I, O, Z, S, V): the
registration authority, the organisation type, the 6-digit area code, the
9-character organisation code, and a check character over the first 17 with
weights 3^i mod 31.
"""

from __future__ import annotations

from typing import Final

ALPHABET: Final = "0123456789ABCDEFGHJKLMNPQRTUWXY"
WEIGHTS: Final = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def check_character(first17: str) -> str:
    total = sum(ALPHABET.index(c) * w for c, w in zip(first17, WEIGHTS, strict=True))
    return ALPHABET[(31 - total % 31) % 31]


def normalise(raw: str) -> str:
    return raw.strip().upper()


def code_problem(raw: str) -> str | None:
    """Why `raw` is not a valid code, or None."""
    code = normalise(raw)
    if len(code) != 18:
        return f"must be 18 characters (got {len(code)})"
    bad = sorted({c for c in code if c not in ALPHABET})
    if bad:
        return f"has characters outside the code alphabet: {''.join(bad)}"
    if not code[2:8].isdigit():
        return "characters 3-8 (the area code) must be digits"
    if check_character(code[:17]) != code[17]:
        return "has a wrong check character"
    return None
