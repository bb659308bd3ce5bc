"""One results row per input page: the spec §6 export record.

`ResultRow` is what the pipeline produces for every page, what the store keeps,
and what the CSV / JSON Lines writers and `omr rescore` read and write.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

__all__ = ["RESULT_COLUMNS", "STATUSES", "ResultRow"]

#: spec §6 required columns, in order (more may follow)
RESULT_COLUMNS = (
    "source",
    "page",
    "status",
    "code_number",
    "version",
    "responses",
    "correct",
    "max_points",
    "percent",
    "passed",
    "flags",
)
#: ``verified``: a review card whose doubts an examiner resolved (`omr.review`)
STATUSES = ("ok", "review", "error", "verified")


@dataclass(frozen=True, slots=True)
class ResultRow:
    """One page's result.

    ``responses`` has one character per question in card position order
    (``A``..``E``, ``-``, ``*``, ``?``).  Score fields are None on ``error`` rows;
    on ``review`` rows they are the provisional score (``?`` counted wrong).
    ``percent`` is exact, quantised to 0.01 (rounded half-up).
    ``extra`` holds further export columns as ``(name, text)`` pairs, in column order
    (e.g. ``certificate``, ``correct:<field>``, or unknown columns kept from a CSV).
    """

    source: str
    page: int
    status: str
    code_number: str = ""
    version: str = ""
    responses: str = ""
    flags: tuple[str, ...] = ()
    correct: int | None = None
    max_points: int | None = None
    percent: Decimal | None = None
    passed: bool | None = None
    extra: tuple[tuple[str, str], ...] = ()
