"""One page from file to results row: load, read, and never let a page kill the batch.

``process_page`` is what every worker runs (in-process, in a process pool, or on a
Dask cluster); it is pure apart from reading the page's file, and always returns a
`PageOutcome` -- whatever happens to the page::

    PageRef ──load_page──► gray ──read_card──► CardReading ──► ResultRow (ok / review)
       │           │                    │
       │           └─ ImageReadError ───┴─ PageNotFoundError, MarkerNotFoundError, any OmrError
       │                                   ──► ResultRow(status="error", flags=(err.code,))
       └─ any other exception (a bug) ──────► ResultRow(status="error", flags=("internal_error",))

The row is not scored here: scoring needs the answer key and happens once, in the
writer (`omr.batch`), so that workers only need the layout and the thresholds.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

from calibration import MarkThresholds
from omr.errors import OmrError
from omr.grid import SamplingGrid, build_sampling_grid
from omr.layout import CardLayout
from omr.pages import LastFile, PageRef, load_page
from omr.reader import CardReading, read_card
from scoring.results import ResultRow

__all__ = ["INTERNAL_ERROR", "PageOutcome", "PageTimings", "process_page", "row_from_reading"]

#: flag of an error row caused by an unexpected exception (a bug, not a bad page)
INTERNAL_ERROR = "internal_error"


@dataclass(frozen=True, slots=True)
class PageTimings:
    """Wall-clock seconds spent on one page: decoding, reading, and in all."""

    load_s: float
    read_s: float
    total_s: float


@dataclass(frozen=True, slots=True)
class PageOutcome:
    """Everything the writer stores for one page.

    ref : the page
    row : its results row, not yet scored (status ok / review / error)
    reading : what the reader saw (fill matrix, thresholds, ...), None on error rows
    timings : per-stage wall-clock times
    error_type : the exception class on error rows (``ImageReadError``, ``ValueError``, ...)
    message : the human explanation on error rows (names the file and the fix)
    """

    ref: PageRef
    row: ResultRow
    reading: CardReading | None
    timings: PageTimings
    error_type: str = ""
    message: str = ""


@functools.lru_cache(maxsize=4)
def _sampling_grid(layout: CardLayout) -> SamplingGrid:
    """The layout's sampling grid, built once per process (layouts are frozen, hashable)."""
    return build_sampling_grid(layout)


def row_from_reading(ref: PageRef, reading: CardReading) -> ResultRow:
    """The unscored results row of a card that was read: ``review`` iff it needs review."""
    return ResultRow(
        source=ref.source,
        page=ref.page,
        status="review" if reading.needs_review else "ok",
        code_number=reading.code_number,
        version=reading.version,
        responses=reading.responses,
        flags=tuple(reading.flags),
    )


def process_page(
    ref: PageRef,
    layout: CardLayout,
    thresholds: MarkThresholds | None = None,
    *,
    pdf_dpi: float = 300.0,
    kept: LastFile | None = None,
) -> PageOutcome:
    """Load and read one page; turn any failure into an ``error`` outcome.

    Parameters
    ----------
    ref : PageRef
    layout : CardLayout
    thresholds : MarkThresholds, optional
        Batch thresholds; by default the reader learns them from each card.
    pdf_dpi : float
        Rasterising resolution for PDF pages (see `omr.pages.load_page`).
    kept : LastFile, optional
        The `LastFile` ``ref`` was described with, in this process (`omr.pages.load_page`).

    Returns
    -------
    PageOutcome
        Never raises for a bad page or a reader bug: an `OmrError` becomes an error row
        flagged with its ``code`` (``image_unreadable``, ``page_not_found``,
        ``markers_not_found``, ...); any other exception an error row flagged
        ``internal_error`` whose message names the exception type.
    """
    t0 = time.perf_counter()
    t_loaded = t0
    try:
        gray = load_page(ref, pdf_dpi=pdf_dpi, kept=kept)
        t_loaded = time.perf_counter()
        reading = read_card(gray, layout, thresholds=thresholds, grid=_sampling_grid(layout))
    except OmrError as err:
        return _error_outcome(ref, t0, t_loaded, err.code, type(err).__name__, str(err))
    except Exception as err:  # a reader bug must cost one page, not the batch
        message = f"{type(err).__name__} while reading {ref.source} page {ref.page}: {err}"
        return _error_outcome(ref, t0, t_loaded, INTERNAL_ERROR, type(err).__name__, message)
    t_read = time.perf_counter()
    return PageOutcome(
        ref=ref,
        row=row_from_reading(ref, reading),
        reading=reading,
        timings=PageTimings(load_s=t_loaded - t0, read_s=t_read - t_loaded, total_s=t_read - t0),
    )


def _error_outcome(
    ref: PageRef, t0: float, t_loaded: float, code: str, error_type: str, message: str
) -> PageOutcome:
    """An error outcome; ``t_loaded == t0`` when decoding itself failed."""
    now = time.perf_counter()
    load_s = (t_loaded if t_loaded > t0 else now) - t0
    return PageOutcome(
        ref=ref,
        row=ResultRow(source=ref.source, page=ref.page, status="error", flags=(code,)),
        reading=None,
        timings=PageTimings(load_s=load_s, read_s=now - t0 - load_s, total_s=now - t0),
        error_type=error_type,
        message=message,
    )
