"""Kubernetes resource quantities (`500m`, `2`, `1Gi`, `128974848`, `1e3`) as exact fractions,
and the canonical forms the server writes back (`1500m`, `2`, `3Gi`)."""

from __future__ import annotations

import re
from fractions import Fraction

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
}
_PATTERN = re.compile(
    r"^(?P<number>[+-]?(\d+(\.\d*)?|\.\d+))(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$"
)


class QuantityError(ValueError):
    pass


def parse(value: str | int | float) -> Fraction:
    """`"250m"` -> 1/4; raises QuantityError with the server's wording on a malformed one."""
    text = str(value).strip()
    found = _PATTERN.match(text)
    if not found:
        raise QuantityError(
            "quantities must match the regular expression "
            "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        )
    number = Fraction(found["number"])
    suffix = found["suffix"] or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix[:1] in ("e", "E"):
        return number * Fraction(10) ** int(suffix[1:])
    return number * _DECIMAL[suffix]


def format_cpu(value: Fraction) -> str:
    """Cores as the server prints them: whole cores plain, else millicores."""
    if value.denominator == 1:
        return str(value.numerator)
    milli = value * 1000
    return (
        f"{milli.numerator // milli.denominator}m" if milli.denominator == 1 else str(float(value))
    )


def format_memory(value: Fraction) -> str:
    """Bytes in the largest binary unit that divides them, as `kubectl` shows quota usage."""
    whole = int(value)
    if whole != value:
        return format_cpu(value)
    for suffix, size in sorted(_BINARY.items(), key=lambda item: -item[1]):
        if whole and whole % size == 0:
            return f"{whole // size}{suffix}"
    return str(whole)


def format_quantity(resource: str, value: Fraction) -> str:
    if resource.endswith("cpu"):
        return format_cpu(value)
    if resource.endswith(("memory", "storage")):
        return format_memory(value)
    return format_cpu(value)
