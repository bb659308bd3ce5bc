"""The code number: Code 128 barcode, Luhn check digit, bubble grid, cross-check.

Also the version row.  Pure functions over arrays; the barcode library (pyzbar) is
imported inside the function that needs it.
"""

from __future__ import annotations

__all__ = ["is_valid_code", "luhn_check_digit"]


def luhn_check_digit(digits: str) -> str:
    """The Luhn check digit that completes ``digits``.

    >>> luhn_check_digit("12345678")
    '2'
    """
    if not digits.isdigit():
        raise ValueError(f"Luhn needs decimal digits, got {digits!r}")
    total = 0
    # walking from the right, the digit next to the (future) check digit is doubled
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def is_valid_code(code: str, digits: int = 9) -> bool:
    """True for a ``digits``-long decimal string whose last digit is its Luhn check."""
    return len(code) == digits and code.isdigit() and luhn_check_digit(code[:-1]) == code[-1]
