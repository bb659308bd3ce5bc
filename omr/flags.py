"""The flags of a results row: one vocabulary, and the one function that decides the status.

A flag is ``name`` or ``name:detail`` (``ambiguous:17,45``, ``rotated:180``,
``duplicate_page:a.jpg``).  Every name the reader, the scorer and the store write is a
`Flag`, and each says what it means for the row (`STATUS_OF`): ``error`` (the page
could not be read), ``review`` (a person must look) or ``ok`` (it explains, e.g.
``rotated``).  `decide_status` turns a row's flags into its status; the reader, the
scorer's re-decision and the store's store-wide checks all call it, so a flag means
the same everywhere.  A name this vocabulary does not know sends the row to review:
a reason nobody taught the machine is still a reason to look.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import StrEnum

__all__ = [
    "ERROR",
    "INFO_FLAGS",
    "OK",
    "REVIEW",
    "STATUS_OF",
    "STATUSES",
    "Flag",
    "decide_status",
    "flag_name",
    "with_questions",
]

OK, REVIEW, ERROR = "ok", "review", "error"
#: statuses from best to worst
STATUSES = (OK, REVIEW, ERROR)


class Flag(StrEnum):
    """Every flag name (README's flag table); the member's value is the name written."""

    # answers (omr.reader's marking policy)
    AMBIGUOUS = "ambiguous"
    DIRTY = "dirty"
    IMPLAUSIBLE_MULTIPLES = "implausible_multiples"
    DIRTY_MULTIPLES = "dirty_multiples"
    MISPLACED = "misplaced"
    STREAK = "streak"
    DOUBTFUL_CARD = "doubtful_card"
    # registration (omr.reader.measure_card)
    MARKER_MISSING = "marker_missing"
    REGISTRATION_DOUBTFUL = "registration_doubtful"
    REGISTRATION_LOCAL = "registration_local"
    ROTATED = "rotated"
    MIRRORED = "mirrored"
    BITONAL = "bitonal"
    # code number and version (omr.decode)
    CODE_MISMATCH = "code_mismatch"
    CHECK_DIGIT = "check_digit"
    CODE_UNREADABLE = "code_unreadable"
    BARCODE_UNREADABLE = "barcode_unreadable"
    BARCODE_OFF_BOX = "barcode_off_box"
    VERSION_MISSING = "version_missing"
    VERSION_MULTIPLE = "version_multiple"
    VERSION_AMBIGUOUS = "version_ambiguous"
    # the part of a layout of several parts (omr.decode.read_part)
    PART_MISMATCH = "part_mismatch"
    PART_UNREADABLE = "part_unreadable"
    PART_ROW_UNREADABLE = "part_row_unreadable"
    # scoring (scoring.rows)
    VERSION_UNKNOWN = "version_unknown"
    VERSION_NOT_IN_KEY = "version_not_in_key"
    RESPONSES_LENGTH = "responses_length"
    RESPONSES_INVALID = "responses_invalid"
    SCORING = "scoring"
    # candidates joined from cards of several parts (scoring.candidates)
    CODE_UNKNOWN = "code_unknown"
    PART_MISSING = "part_missing"
    PART_DUPLICATE = "part_duplicate"
    PART_UNKNOWN = "part_unknown"
    VERSION_MISMATCH = "version_mismatch"
    PART_REVIEW = "part_review"
    RESPONSES_LENGTH_PART = "responses_length_part"
    # the store's store-wide checks (omr.store)
    DUPLICATE_CODE = "duplicate_code"
    DUPLICATE_PAGE = "duplicate_page"
    # pages that could not be read (omr.pipeline, omr.errors codes)
    IMAGE_UNREADABLE = "image_unreadable"
    PAGE_NOT_FOUND = "page_not_found"
    MARKERS_NOT_FOUND = "markers_not_found"
    BARCODE_LIBRARY = "barcode_library"
    INTERNAL_ERROR = "internal_error"
    WORKER_CRASHED = "worker_crashed"


#: flags that explain but do not send a card to review
INFO_FLAGS = frozenset(
    {Flag.BARCODE_UNREADABLE, Flag.BARCODE_OFF_BOX, Flag.BITONAL, Flag.MIRRORED, Flag.ROTATED, Flag.PART_ROW_UNREADABLE}
)
_ERROR_FLAGS = frozenset(
    {
        Flag.IMAGE_UNREADABLE,
        Flag.PAGE_NOT_FOUND,
        Flag.MARKERS_NOT_FOUND,
        Flag.BARCODE_LIBRARY,
        Flag.INTERNAL_ERROR,
        Flag.WORKER_CRASHED,
    }
)
#: what each flag means for its row
STATUS_OF: dict[Flag, str] = {
    f: OK if f in INFO_FLAGS else ERROR if f in _ERROR_FLAGS else REVIEW for f in Flag
}


def flag_name(flag: str) -> str:
    """The name of a flag, without its detail.

    >>> flag_name("ambiguous:17,45"), flag_name("mirrored")
    ('ambiguous', 'mirrored')
    """
    return flag.split(":", 1)[0]


def with_questions(flag: Flag, questions: Iterable[int]) -> str:
    """``flag:q1,q2`` for 0-based question indices, written 1-based.

    >>> with_questions(Flag.AMBIGUOUS, [16, 44])
    'ambiguous:17,45'
    """
    return f"{flag}:" + ",".join(str(int(q) + 1) for q in questions)


def decide_status(flags: Sequence[str], *, at_least: str = OK) -> str:
    """The status of a row with these flags: the worst any of them means.

    ``at_least`` is a status the row has whatever its flags (the store keeps a page's
    status as read, ``error`` or ``review``, under its store-wide checks).  A name
    that is not a `Flag` means review.

    >>> decide_status(("rotated:90", "barcode_unreadable"))
    'ok'
    >>> decide_status(("rotated:90", "ambiguous:3"))
    'review'
    >>> decide_status(("page_not_found",)), decide_status((), at_least="review")
    ('error', 'review')
    >>> decide_status(("someone_elses_flag",))
    'review'
    """
    worst = STATUSES.index(at_least)
    for flag in flags:
        name = flag_name(flag)
        status = STATUS_OF[Flag(name)] if name in _NAMES else REVIEW
        worst = max(worst, STATUSES.index(status))
    return STATUSES[worst]


_NAMES = frozenset(f.value for f in Flag)
