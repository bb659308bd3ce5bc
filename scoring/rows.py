"""Scoring results rows (spec §6): fresh after a scan, or again with a corrected key.

`score_rows` fills ``correct``, ``max_points``, ``percent`` and ``passed`` on every
``ok``/``review`` row in one `score_codes` call, and decides what to do with rows the
key cannot score — it never guesses::

    status error                         → scores empty, row unchanged otherwise
    responses not Q characters long      → scores empty, flag responses_length, review
    version in the key                   → scored with that version
    version empty/unknown, key has one   → scored with the key's only version
    version empty, key has several       → scores empty, flag version_unknown, review
    version unknown, key has several     → scores empty, flag version_not_in_key, review
    a character outside options and -*?  → scores empty, flag responses_invalid:<positions>,
                                           review

A row is never trusted for what its content contradicts (a results file may have been
edited): the flags that describe the content are derived from it again, in place —
``ambiguous:<q>`` lists exactly the questions read ``?``, ``check_digit`` is there
exactly when a 9-digit code number fails its Luhn check, ``code_unreadable`` whenever
the code number is not 9 ASCII digits (a lost leading zero, a letter) — and the status
follows `omr.flags.decide_status`: an ``ok`` (or ``verified``) row holding a ``?``, a bad
code number or a review flag goes to ``review``.  Scoring flags from an earlier key are
dropped first, so re-scoring with a corrected key re-decides them; a ``review`` row whose
removed flags were its only reasons (its other flags are informational) goes back to
``ok``.  Other flags, and ``error`` rows, are kept as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

import numpy as np

from omr.errors import ScoringError
from omr.flags import ERROR, OK, REVIEW, Flag, decide_status, flag_name, with_questions
from scoring.core import (
    CohortScores,
    certificate_line,
    encode_responses,
    format_percent,
    percent_decimal,
    score_codes,
    version_indices,
)
from scoring.key import AnswerKey
from scoring.results import ResultRow

__all__ = [
    "CERTIFICATE_COLUMN",
    "DOMAIN_COLUMN_PREFIX",
    "DOMAIN_MAX_COLUMN_PREFIX",
    "DOMAIN_PERCENT_COLUMN_PREFIX",
    "RescoreReport",
    "SCORING_FLAGS",
    "add_details",
    "detail_columns",
    "rescore_rows",
    "score_rows",
    "with_details",
]

#: flags `score_rows` sets (a ``:positions`` suffix may follow responses_invalid)
SCORING_FLAGS = tuple(f.value for f in (Flag.VERSION_UNKNOWN, Flag.VERSION_NOT_IN_KEY, Flag.RESPONSES_LENGTH,
                                         Flag.RESPONSES_INVALID))
#: extra column with the certificate line (``details=True``)
CERTIFICATE_COLUMN = "certificate"
#: extra columns ``correct:<field of medicine>`` with points per field (``details=True``)
DOMAIN_COLUMN_PREFIX = "correct:"
#: ... ``max_points:<field>``, the points possible in that field under the key
DOMAIN_MAX_COLUMN_PREFIX = "max_points:"
#: ... ``percent:<field>``, the field's points as a percentage of its maximum (two decimals)
DOMAIN_PERCENT_COLUMN_PREFIX = "percent:"
_DOMAIN_PREFIXES = (DOMAIN_COLUMN_PREFIX, DOMAIN_MAX_COLUMN_PREFIX, DOMAIN_PERCENT_COLUMN_PREFIX)


def _is_scoring_flag(flag: str) -> bool:
    return flag.split(":", 1)[0] in SCORING_FLAGS


#: flags that describe what is in the row, derived from it again by `content_flags`
_CONTENT_FLAGS = frozenset({Flag.AMBIGUOUS.value, Flag.CHECK_DIGIT.value, Flag.CODE_UNREADABLE.value})
#: digits of a code number (spec §3)
CODE_DIGITS = 9


def content_flags(flags: Sequence[str], responses: str, code_number: str,
                  digits: int = CODE_DIGITS) -> tuple[tuple[str, ...], bool]:
    """``flags`` with those describing the row's content derived from it again.

    Returns the new flags (in their places; new ones at the end) and whether one was
    dropped because the content no longer shows it (an examiner's correction).

    >>> content_flags(("rotated:90",), "A?B?", "123456782")
    (('rotated:90', 'ambiguous:2,4'), False)
    >>> content_flags(("ambiguous:2",), "ABC", "12345678")
    (('code_unreadable',), True)
    >>> content_flags((), "ABC", "123456789")
    (('check_digit',), False)
    """
    from omr.decode import is_valid_code  # the reader's Luhn check (imports OpenCV: only when needed)

    doubtful = [q for q, c in enumerate(responses) if c == "?"] if "?" in responses else []
    complete = len(code_number) == digits and code_number.isascii() and code_number.isdigit()
    want = {
        Flag.AMBIGUOUS.value: with_questions(Flag.AMBIGUOUS, doubtful) if doubtful else None,
        Flag.CHECK_DIGIT.value: (Flag.CHECK_DIGIT.value if not is_valid_code(code_number, digits) else None)
        if complete else next((f for f in flags if f == Flag.CHECK_DIGIT), None),
        Flag.CODE_UNREADABLE.value: None if complete else Flag.CODE_UNREADABLE.value,
    }
    out: list[str] = []
    dropped = False
    for flag in flags:
        name = flag_name(flag)
        if name not in _CONTENT_FLAGS:
            out.append(flag)
            continue
        derived = want.pop(name, None)
        if derived is not None:
            out.append(derived)
        dropped |= derived is None
    out += [f for f in want.values() if f is not None]
    return tuple(out), dropped


def _is_detail_column(name: str) -> bool:
    return name == CERTIFICATE_COLUMN or name.startswith(_DOMAIN_PREFIXES)


def detail_columns(key: AnswerKey) -> tuple[str, ...]:
    """The detail columns for ``key``: ``certificate``, then per field of medicine (key
    order) ``correct:<field>``, ``max_points:<field>``, ``percent:<field>``.

    >>> key = AnswerKey.from_dict({"versions": {"A": {"key": "AB"}}, "pass_percent": 50,
    ...                            "domains": {"x": 1, "y": 1}})
    >>> detail_columns(key)
    ('certificate', 'correct:x', 'max_points:x', 'percent:x', 'correct:y', 'max_points:y', 'percent:y')
    """
    return (CERTIFICATE_COLUMN,
            *(f"{prefix}{d.name}" for d in key.domains for prefix in _DOMAIN_PREFIXES))


def _detail_cells(scores: CohortScores) -> list[tuple[str, ...]]:
    """Per scored card the `detail_columns` cells (certificate, then points/max/percent per field)."""
    maxima = [str(m) for m in scores.domain_max.tolist()]
    most = scores.domain_max.astype(np.int64)
    # percent_hundredths per column (each field its own maximum; 0 where a field has none)
    hundredths = np.where(most > 0, (20000 * scores.domain_correct.astype(np.int64) + most)
                          // (2 * np.maximum(most, 1)), 0)
    out = []
    for points, counts, shares in zip(scores.correct.tolist(), scores.domain_correct.tolist(),
                                      hundredths.tolist(), strict=True):
        cells = [certificate_line(points, scores.max_points)]
        for c, m, h in zip(counts, maxima, shares, strict=True):
            cells += [str(c), m, format_percent(h)]
        out.append(tuple(cells))
    return out


def add_details(rows: Sequence[ResultRow], key: AnswerKey) -> list[ResultRow]:
    """``rows`` with the `detail_columns` of ``key`` appended to their extra columns.

    Rows that carry a score get their cells from their responses and version scored
    with ``key`` (the key they were scored with: stale detail columns are replaced);
    the others get empty cells.

    Raises
    ------
    ScoringError
        A row's stored points differ from what ``key`` gives its responses: the row was
        scored with another key, and its details would not add up.
    AnswerKeyError
        A scored row's version is not in ``key`` (same cause).
    """
    names = detail_columns(key)
    scored = [i for i, r in enumerate(rows) if r.correct is not None]
    codes = encode_responses([rows[i].responses for i in scored], key.options, key.questions)
    scores = score_codes(codes, version_indices([rows[i].version for i in scored], key), key)
    stored = np.array([rows[i].correct for i in scored], dtype=np.int64)
    wrong = np.flatnonzero(stored != scores.correct)
    if wrong.size:
        r = rows[scored[int(wrong[0])]]
        raise ScoringError(
            f"{r.source} page {r.page}: stored {r.correct} points, but key {key.source} gives "
            f"{int(scores.correct[wrong[0]])} ({wrong.size} rows differ): the rows were scored with another "
            "key; re-score them with this one first"
        )
    cells: list[tuple[str, ...]] = [("",) * len(names)] * len(rows)
    for i, c in zip(scored, _detail_cells(scores), strict=True):
        cells[i] = c
    return [replace(r, extra=(*(item for item in r.extra if not _is_detail_column(item[0])),
                              *zip(names, c, strict=True)))
            for r, c in zip(rows, cells, strict=True)]


def score_rows(rows: Sequence[ResultRow], key: AnswerKey, *, details: bool = False) -> list[ResultRow]:
    """Score results rows with ``key`` (see the module docstring for unscorable rows).

    Parameters
    ----------
    rows : sequence of ResultRow
    key : AnswerKey
    details : bool
        Also set the extra columns ``certificate`` (`certificate_line`) and
        ``correct:<field>`` per field of medicine (empty on unscored rows).  Stale
        detail columns are always dropped.

    Returns
    -------
    list of ResultRow
        Same order and length as ``rows``.  ``error`` rows have empty scores; status and
        flags are kept except for the scoring flags re-decided here.

    Examples
    --------
    >>> from scoring.key import AnswerKey
    >>> key = AnswerKey.from_dict({"versions": {"A": {"key": "ABC"}}, "pass_percent": 56})
    >>> row = ResultRow(source="a.jpg", page=1, status="ok", version="A", responses="AB-")
    >>> row = score_rows([row], key)[0]
    >>> row.correct, row.max_points, row.percent, row.passed
    (2, 3, Decimal('66.67'), True)
    """
    rows = list(rows)
    n_rows = len(rows)
    statuses: list[str] = []
    flag_lists: list[tuple[str, ...]] = []
    extras: list[tuple[tuple[str, str], ...]] = []
    scorable: list[int] = []
    versions: list[int] = []
    index = {name: i for i, name in enumerate(key.version_names)}
    missing = 0 if len(key.versions) == 1 else -1
    for row in rows:
        status, flags = row.status, row.flags
        if status != ERROR:
            dropped = bool(flags) and any(_is_scoring_flag(f) for f in flags)
            if dropped:
                flags = tuple(f for f in flags if not _is_scoring_flag(f))
            derived, changed = content_flags(flags, row.responses, row.code_number)
            if status in (OK, REVIEW) or any(flag_name(f) in _CONTENT_FLAGS for f in derived):
                flags, status = derived, _status(status, derived, dropped or changed)
            # else an examiner's 'verified' row with nothing in doubt: its flags say why it was
            # reviewed and stay as they are
        if status != ERROR:
            v = index.get(row.version, missing)
            if len(row.responses) != key.questions:
                flags = (*flags, Flag.RESPONSES_LENGTH.value)
                status = REVIEW
            elif v < 0:
                flags = (*flags, (Flag.VERSION_NOT_IN_KEY if row.version else Flag.VERSION_UNKNOWN).value)
                status = REVIEW
            else:
                scorable.append(len(statuses))
                versions.append(v)
        statuses.append(status)
        flag_lists.append(flags)
        extras.append(tuple(item for item in row.extra if not _is_detail_column(item[0]))
                      if row.extra else ())

    codes = encode_responses([rows[i].responses for i in scorable], key.options, key.questions)
    scores = score_codes(codes, np.array(versions, dtype=np.intp), key)
    invalid = codes >= len(key.options) + 3
    unscored = np.flatnonzero(invalid.any(axis=1))
    for j in unscored.tolist():
        i = scorable[j]
        flag_lists[i] = (*flag_lists[i], with_questions(Flag.RESPONSES_INVALID, np.flatnonzero(invalid[j])))
        statuses[i] = REVIEW
    if unscored.size:  # scores left empty: a character no key knows is not guessed
        keep = np.ones(len(scorable), dtype=bool)
        keep[unscored] = False
        scorable = [i for i, k in zip(scorable, keep.tolist(), strict=True) if k]
        scores = _select(scores, keep)
    correct: list[int | None] = [None] * n_rows
    percent: list[Decimal | None] = [None] * n_rows
    passed: list[bool | None] = [None] * n_rows
    decimals: dict[int, Decimal] = {}
    for i, c, h, p in zip(scorable, scores.correct.tolist(), scores.percent_hundredths.tolist(),
                          scores.passed.tolist(), strict=True):
        correct[i], passed[i] = c, p
        if h not in decimals:  # one Decimal per distinct percentage
            decimals[h] = percent_decimal(h)
        percent[i] = decimals[h]
    if details:
        names = detail_columns(key)
        blank = tuple((name, "") for name in names)
        for i, cells in zip(scorable, _detail_cells(scores), strict=True):
            extras[i] = (*extras[i], *zip(names, cells, strict=True))
        scored = set(scorable)
        for i in range(n_rows):
            if i not in scored:
                extras[i] = (*extras[i], *blank)
    return [
        ResultRow(source=row.source, page=row.page, status=statuses[i], code_number=row.code_number,
                  version=row.version, responses=row.responses, flags=flag_lists[i], correct=correct[i],
                  max_points=None if correct[i] is None else scores.max_points, percent=percent[i],
                  passed=passed[i], extra=extras[i])
        for i, row in enumerate(rows)
    ]


def _status(status: str, flags: Sequence[str], dropped: bool) -> str:
    """A readable row's status under its re-derived ``flags`` (see the module docstring)."""
    if status == REVIEW and dropped:  # perhaps in review only for reasons that are gone
        return decide_status(flags)
    if status in (OK, REVIEW):
        return decide_status(flags, at_least=status)
    # 'verified' (an examiner resolved the row), and yet its content is in doubt again
    return ERROR if decide_status(flags) == ERROR else REVIEW


def _select(scores: CohortScores, keep: np.ndarray) -> CohortScores:
    """``scores`` of the cards where ``keep`` is True."""
    return replace(scores, correct=scores.correct[keep], percent_hundredths=scores.percent_hundredths[keep],
                   passed=scores.passed[keep], domain_correct=scores.domain_correct[keep])


def with_details(rows: Iterable[ResultRow], key: AnswerKey, *, chunk: int = 2000) -> Iterator[ResultRow]:
    """`add_details` over a stream of rows, ``chunk`` rows at a time."""
    block: list[ResultRow] = []
    for row in rows:
        block.append(row)
        if len(block) >= chunk:
            yield from add_details(block, key)
            block.clear()
    if block:
        yield from add_details(block, key)


@dataclass(frozen=True, slots=True)
class RescoreReport:
    """What re-scoring with a new key did.

    rows : the re-scored rows, in input order
    changed_score : rows whose correct count or percent changed (incl. scored ↔ unscored)
    passed_to_failed, failed_to_passed : rows whose pass/fail flipped
    newly_scored, no_longer_scored : rows that gained / lost a score
    status_changed : rows whose status changed (scoring flags re-decided)
    ok, review, error : status counts after re-scoring
    max_points_before : the old rows' max_points values (sorted, distinct)
    max_points : the new key's max_points
    """

    rows: list[ResultRow]
    changed_score: int
    passed_to_failed: int
    failed_to_passed: int
    newly_scored: int
    no_longer_scored: int
    status_changed: int
    ok: int
    review: int
    error: int
    max_points_before: tuple[int, ...]
    max_points: int

    @property
    def changed_pass(self) -> int:
        """Rows whose pass/fail decision flipped."""
        return self.passed_to_failed + self.failed_to_passed

    def summary(self) -> str:
        """One line for people: ``rescored 20000 rows: 1834 changed score, 112 changed pass/fail ...``."""
        text = (f"rescored {len(self.rows)} rows: {self.changed_score} changed score, {self.changed_pass} "
                f"changed pass/fail ({self.passed_to_failed} pass→fail, {self.failed_to_passed} fail→pass); "
                f"ok {self.ok}, review {self.review}, error {self.error}")
        before = "/".join(str(m) for m in self.max_points_before) or "-"
        text += f"; max points {before} → {self.max_points}"
        if self.newly_scored or self.no_longer_scored:
            text += f"; {self.newly_scored} newly scored, {self.no_longer_scored} no longer scored"
        if self.status_changed:
            text += f"; {self.status_changed} changed status"
        return text


def rescore_rows(
    old_rows: Iterable[ResultRow],
    key: AnswerKey,
    *,
    details: bool = False,
    score: Callable[[Sequence[ResultRow], AnswerKey], list[ResultRow]] | None = None,
) -> RescoreReport:
    """Re-score stored rows with a new key (after annulments or key corrections).

    Uses only the stored responses and versions — never the images.  Pure: the caller
    writes the new rows (CSV, JSON Lines, or the results store).

    Parameters
    ----------
    old_rows : iterable of ResultRow
    key : AnswerKey
    details : bool
        As in `score_rows`.
    score : callable, optional
        Scores the rows instead of `score_rows` (``score(rows, key)``): pages of cards
        of several parts (`scoring.candidates.score_part_pages`).

    Returns
    -------
    RescoreReport
    """
    old = list(old_rows)
    new = score_rows(old, key, details=details) if score is None else score(old, key)
    counts = {"ok": 0, "review": 0, "error": 0}
    changed = p2f = f2p = gained = lost = status_changed = 0
    for a, b in zip(old, new, strict=True):
        counts[b.status] = counts.get(b.status, 0) + 1
        status_changed += a.status != b.status
        if (a.correct, a.percent) != (b.correct, b.percent):
            changed += 1
        gained += a.correct is None and b.correct is not None
        lost += a.correct is not None and b.correct is None
        if a.passed is not None and b.passed is not None and a.passed != b.passed:
            p2f += a.passed
            f2p += b.passed
    return RescoreReport(
        rows=new,
        changed_score=changed,
        passed_to_failed=p2f,
        failed_to_passed=f2p,
        newly_scored=gained,
        no_longer_scored=lost,
        status_changed=status_changed,
        ok=counts["ok"],
        review=counts["review"],
        error=counts["error"],
        max_points_before=tuple(sorted({a.max_points for a in old if a.max_points is not None})),
        max_points=key.max_points,
    )
