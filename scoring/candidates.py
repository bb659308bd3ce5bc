"""Candidates: a candidate's cards joined by code number and scored as one test.

CEM's cards hold 100 questions (LEK, LDEK, LEW, LDEW) or 120 (PES); a 200-question
candidate hands in two cards, each with the code number and its part (layout
``cem-100``: `omr.layout.PartRow`).  The page rows (one per page, spec §6) say what
each card reads; `join_candidates` makes one row per candidate::

    pages with code number C ──by part──► part 1 responses + part 2 responses + ...
                                          (card positions 1-100, then 101-200)
                              ──score_rows(key)──► correct, max_points, percent, passed

A candidate is scored only when each part is there exactly once and the parts agree on
the version; otherwise the row is ``review`` with empty responses and scores and a
flag saying why (never a silent score):

    part_missing:<parts>     no readable card of those parts carries the code number
    part_duplicate:<parts>   two cards (not copies of one file) of the same part
    part_unknown:<n>         n cards of the code number whose part could not be read
    version_mismatch         the parts are marked with different versions
    code_unknown             (a row per page) a card read without a code number

A candidate whose parts join but one of whose pages is in ``review`` is ``review``
with ``part_review:<parts>`` and the provisional score (spec §6: ``?`` counted wrong);
the scoring flags of `scoring.rows` (``version_unknown``...) apply as on page rows.
Joined responses are exactly what a 200-question card would hold, so a joined
candidate scores as that card would (tests/scoring/test_candidates.py checks it).

Pages that are ``error`` rows, and copies of a file already stored
(``duplicate_page``), are not cards of anybody and take no part in joining.
A layout without parts is the one-part case: each candidate has one card.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path

from omr.flags import REVIEW, Flag, decide_status
from scoring.export import _CsvRows, _percent_text, _Replacing, _responses_text, spreadsheet_text
from scoring.key import AnswerKey
from scoring.results import ResultRow
from scoring.rows import SCORING_FLAGS, score_rows

__all__ = [
    "CANDIDATE_COLUMNS",
    "CANDIDATE_FLAGS",
    "CandidateRow",
    "PageRecord",
    "join_candidates",
    "page_record",
    "score_part_pages",
    "write_candidates_csv",
]

#: the candidate-level export's columns, in order
CANDIDATE_COLUMNS = (
    "code_number",
    "status",
    "version",
    "responses",
    "correct",
    "max_points",
    "percent",
    "passed",
    "flags",
    "pages",
)
#: flags `join_candidates` sets (a ``:parts`` suffix may follow)
CANDIDATE_FLAGS = (Flag.PART_MISSING, Flag.PART_DUPLICATE, Flag.PART_UNKNOWN, Flag.VERSION_MISMATCH,
                   Flag.CODE_UNKNOWN, Flag.PART_REVIEW, Flag.RESPONSES_LENGTH_PART)


@dataclass(frozen=True, slots=True)
class PageRecord:
    """What joining needs of one page row.

    part : the card's part (1-based); None when it could not be read (and on a layout
        without parts, where every card is part 1)
    duplicate_of : the first source of the same file content ("" for a first reading)
    """

    source: str
    page: int
    status: str
    code_number: str
    version: str
    responses: str
    part: int | None = None
    flags: tuple[str, ...] = ()
    duplicate_of: str = ""

    @property
    def where(self) -> str:
        """``source#page``, how the candidate row names its pages."""
        return f"{self.source}#{self.page}"


@dataclass(frozen=True, slots=True)
class CandidateRow:
    """One candidate: joined responses (whole-test card positions), scores, flags, pages.

    Score fields are None when the candidate is not scored (see the module docstring);
    ``pages`` are ``source#page`` in part order.
    """

    code_number: str
    status: str
    version: str = ""
    responses: str = ""
    flags: tuple[str, ...] = ()
    correct: int | None = None
    max_points: int | None = None
    percent: Decimal | None = None
    passed: bool | None = None
    pages: tuple[str, ...] = ()


#: flag prefix of a page that is a copy of a file already stored (`omr.store.DUPLICATE_PAGE`)
_COPY_FLAG = "duplicate_page:"


def page_record(row: ResultRow) -> PageRecord:
    """The `PageRecord` of an exported page row: its part from the ``part`` column (absent
    or empty: None), and whether it is a copy from its ``duplicate_page:<first>`` flag.

    >>> page_record(ResultRow("b.jpg", 1, "review", "123456782", "A", "AB", ("duplicate_page:a.jpg",),
    ...                       extra=(("part", "2"),))).part
    2
    """
    part = dict(row.extra).get("part", "")
    copy_of = next((f[len(_COPY_FLAG):] for f in row.flags if f.startswith(_COPY_FLAG)), "")
    return PageRecord(source=row.source, page=row.page, status=row.status, code_number=row.code_number,
                      version=row.version, responses=row.responses, part=int(part) if part.isdigit() else None,
                      flags=row.flags, duplicate_of=copy_of)


def join_candidates(pages: Iterable[PageRecord], key: AnswerKey, *, parts: int, questions: int) -> list[CandidateRow]:
    """One row per candidate (code number), sorted by code number; codeless cards last.

    Parameters
    ----------
    pages : iterable of PageRecord
        Page rows of the batch (any order: a stack is never in candidate order).
    key : AnswerKey
        The whole test's key (``parts * questions`` questions).
    parts : int
        Cards per candidate (the layout's `CardLayout.part_count`).
    questions : int
        Questions on each card.

    Returns
    -------
    list of CandidateRow

    Examples
    --------
    >>> key = AnswerKey.from_dict({"versions": {"A": {"key": "ABCD"}}, "pass_percent": 50})
    >>> cards = [PageRecord("b.jpg", 1, "ok", "123456782", "A", "CD", part=2),
    ...          PageRecord("a.jpg", 1, "ok", "123456782", "A", "AB", part=1)]
    >>> row = join_candidates(cards, key, parts=2, questions=2)[0]
    >>> row.responses, row.correct, row.pages
    ('ABCD', 4, ('a.jpg#1', 'b.jpg#1'))
    >>> join_candidates(cards[:1], key, parts=2, questions=2)[0].flags
    ('part_missing:1',)
    """
    by_code: dict[str, list[PageRecord]] = {}
    codeless: list[CandidateRow] = []
    for p in pages:
        if p.status == "error" or p.duplicate_of:
            continue
        if parts == 1:
            p = replace(p, part=1)
        if not p.code_number:
            codeless.append(CandidateRow(code_number="", status=decide_status([Flag.CODE_UNKNOWN]),
                                         flags=(str(Flag.CODE_UNKNOWN),),
                                         pages=(p.where,)))
            continue
        by_code.setdefault(p.code_number, []).append(p)
    rows: list[CandidateRow | None] = []
    joined: list[ResultRow] = []
    slots: list[tuple[int, tuple[str, ...]]] = []  # each joined candidate's place in rows, its pages
    for code in sorted(by_code):
        cards = sorted(by_code[code], key=lambda p: (p.part or parts + 1, p.source, p.page))
        where = tuple(p.where for p in cards)
        present = [p.part for p in cards if p.part is not None]
        flags: list[str] = []
        missing = [k for k in range(1, parts + 1) if k not in present]
        twice = sorted({k for k in present if present.count(k) > 1})
        unknown = sum(p.part is None for p in cards)
        versions = sorted({p.version for p in cards if p.version})
        if missing:
            flags.append(f"{Flag.PART_MISSING}:" + ",".join(map(str, missing)))
        if twice:
            flags.append(f"{Flag.PART_DUPLICATE}:" + ",".join(map(str, twice)))
        if unknown:
            flags.append(f"{Flag.PART_UNKNOWN}:{unknown}")
        if len(versions) > 1:
            flags.append(str(Flag.VERSION_MISMATCH))
        in_review = sorted({p.part for p in cards if p.status == "review" and p.part is not None})
        if in_review:
            flags.append(f"{Flag.PART_REVIEW}:" + ",".join(map(str, in_review)))
        if missing or twice or unknown or len(versions) > 1:
            rows.append(CandidateRow(code_number=code, status=decide_status(flags), flags=tuple(flags), pages=where))
            continue
        responses = "".join(p.responses if len(p.responses) == questions else "?" * questions for p in cards)
        bad_length = [p.part for p in cards if len(p.responses) != questions]
        if bad_length:  # a page row read on another card's layout: nothing of it is trusted
            flags.append(f"{Flag.RESPONSES_LENGTH_PART}:" + ",".join(map(str, bad_length)))
        slots.append((len(rows), where))
        rows.append(None)
        joined.append(ResultRow(source=where[0], page=1, status=decide_status(flags),
                                code_number=code, version=versions[0] if versions else "",
                                responses=responses, flags=tuple(flags)))
    for (slot, where), scored in zip(slots, score_rows(joined, key), strict=True):
        rows[slot] = CandidateRow(
            code_number=scored.code_number, status=scored.status, version=scored.version,
            responses=scored.responses, flags=scored.flags, correct=scored.correct,
            max_points=scored.max_points, percent=scored.percent, passed=scored.passed,
            pages=where,
        )
    return [r for r in rows if r is not None] + codeless


def score_part_pages(rows: Sequence[ResultRow], key: AnswerKey | None = None) -> list[ResultRow]:
    """Page rows of cards of several parts: no score of their own (the candidate has it).

    A part card holds a slice of the test, and pass/fail is the candidate's: its row
    keeps status, responses and flags as read, with empty scores; scoring flags of an
    earlier key are dropped (and a row in review only for them goes back to ``ok``),
    as `scoring.rows.score_rows` does.  ``key`` is accepted for the same signature.
    """
    out = []
    for row in rows:
        status, flags = row.status, row.flags
        if any(f.split(":", 1)[0] in SCORING_FLAGS for f in flags):
            flags = tuple(f for f in flags if f.split(":", 1)[0] not in SCORING_FLAGS)
            if status == REVIEW:
                status = decide_status(flags)
        out.append(replace(row, status=status, flags=flags, correct=None, max_points=None, percent=None,
                           passed=None))
    return out


def write_candidates_csv(rows: Iterable[CandidateRow], path: str | Path) -> int:
    """Write the candidate-level CSV (`CANDIDATE_COLUMNS`; flags and pages ``;``-joined).

    Score cells are empty when the candidate is not scored; ``percent`` has two
    decimals, ``passed`` is ``true``/``false``.  The file is replaced only once
    complete.  Returns the rows written.
    """
    n = 0
    with _Replacing(path) as fh:
        writer = _CsvRows(fh)
        writer.writerow(CANDIDATE_COLUMNS)
        for r in rows:
            n += 1
            writer.writerow([
                spreadsheet_text(r.code_number), r.status, spreadsheet_text(r.version),
                _responses_text(r.responses),
                "" if r.correct is None else str(r.correct),
                "" if r.max_points is None else str(r.max_points),
                "" if r.percent is None else _percent_text(r.percent),
                "" if r.passed is None else ("true" if r.passed else "false"),
                spreadsheet_text(";".join(r.flags)), spreadsheet_text(";".join(r.pages)),
            ])
    return n
