"""The one exception tree of the reader and the scorer.

::

    OmrError                      anything this project raises on purpose
    ├── LayoutError               a card layout file is missing a field or is inconsistent
    ├── ImageReadError            a file/page cannot be decoded (empty, truncated, not an image)
    ├── PageNotFoundError         the page holds no card (blank page, photo, wrong form)
    │   └── MarkerNotFoundError   corner markers missing/cut off, or orientation undecidable
    ├── BarcodeError              the barcode library is unusable (e.g. libzbar missing)
    ├── StoreError                the results store cannot be opened or written
    ├── ReviewError               an examiner's decision cannot be recorded (bad value, doubts left)
    └── ScoringError              scoring cannot proceed
        └── AnswerKeyError        an answer key file is malformed

Expected outcomes (an unreadable barcode, an ambiguous box) are *values* (flags on the
result), not exceptions; these are for broken contracts and unusable pages.  Every message
names the file or field, the measurement, and what to do.
"""

from __future__ import annotations

__all__ = [
    "AnswerKeyError",
    "BarcodeError",
    "ImageReadError",
    "LayoutError",
    "MarkerNotFoundError",
    "OmrError",
    "PageNotFoundError",
    "ReviewError",
    "ScoringError",
    "StoreError",
]


class OmrError(Exception):
    """Root of every error this project raises on purpose."""

    #: short machine-readable reason used in the results `flags` column
    code: str = "error"


class LayoutError(OmrError):
    code = "layout_invalid"


class ImageReadError(OmrError):
    code = "image_unreadable"


class PageNotFoundError(OmrError):
    code = "page_not_found"


class MarkerNotFoundError(PageNotFoundError):
    code = "markers_not_found"


class BarcodeError(OmrError):
    code = "barcode_library"


class StoreError(OmrError):
    code = "store"


class ReviewError(OmrError):
    code = "review"


class ScoringError(OmrError):
    code = "scoring"


class AnswerKeyError(ScoringError):
    code = "answer_key_invalid"
