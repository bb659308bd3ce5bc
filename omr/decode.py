"""The code number: Code 128 barcode, Luhn check digit, bubble grid, cross-check.

Also the version row, and the part number of a card of several parts (its barcode's
last digit, cross-checked with the part row).  Pure functions over arrays; the barcode library (pyzbar) is
imported inside the function that needs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from omr.errors import BarcodeError
from omr.layout import CardLayout

__all__ = [
    "CODE_REVIEW_FLAGS",
    "PART_REVIEW_FLAGS",
    "BarcodeRead",
    "CodeNumberRead",
    "PartRead",
    "decode_barcode",
    "is_valid_code",
    "luhn_check_digit",
    "read_grid_digits",
    "read_part",
    "read_version",
    "resolve_code_number",
]


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


# -- barcode ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BarcodeRead:
    """One decoded barcode: its text, symbology and where it was found."""

    data: str
    symbology: str
    where: str  # "box" (the layout's barcode box) or "header" (the band above the answers)


def decode_barcode(
    gray: NDArray[np.uint8],
    homography: NDArray[np.float64],
    layout: CardLayout,
    px_per_mm: float,
    *,
    search_header: bool = True,
) -> BarcodeRead | None:
    """Decode the Code 128 code number in its box, else anywhere in the card's header.

    Regions are warped upright through the page homography at 4–5 px/mm (modules
    are ~0.7 mm: 3–4 px each), which is what keeps this cheap: MEASURED.md gives
    ~6 ms for the box against ~220 ms for pyzbar on a whole 300 DPI page.  The
    fallback is the band above the answer grid, where a label stuck off its box
    still lies, at the same low resolution.  Returns None when nothing decodes.

    Raises
    ------
    BarcodeError
        when the zbar library is missing.
    """
    try:
        from pyzbar import pyzbar
    except ImportError as err:  # pyzbar raises ImportError when libzbar is absent
        raise BarcodeError(f"libzbar not found ({err}); install it: apt-get install libzbar0") from err
    rate = float(np.clip(px_per_mm, 4.0, 5.0))
    x0, y0, x1, y1 = layout.barcode.box_mm
    margin = 3.0
    # a 1-D code decodes from a few scan lines: first a band across the middle of the
    # bars (a quarter of the box's pixels), then the whole box
    bars_mid = y0 + (y1 - y0) * 0.35
    band_mm = (x0 - margin, bars_mid - 2.5, x1 + margin, bars_mid + 2.5)
    band = _warp_region(gray, homography, band_mm, rate)
    box_mm = (x0 - margin, y0 - margin, x1 + margin, y1 + margin)
    found = _decode_band(pyzbar, band) or _decode_region(
        pyzbar, _warp_region(gray, homography, box_mm, rate), "box"
    )
    # a label printed with thin modules (~0.2 mm: 1 px at 4-5 px/mm) needs the scan's own
    # resolution; tried only after the rest failed on the box
    full_rate = min(float(px_per_mm), MAX_FULL_RATE)
    if found is None and full_rate > rate * 1.3:
        found = _decode_band(pyzbar, _warp_region(gray, homography, band_mm, full_rate))
    # then the header, but only when the box shows no bars: a label on its box that
    # does not decode (a sticker, a stroke, a smudge over it) is not elsewhere, and
    # searching the header costs ~20 ms a card
    if found is None and search_header and not _holds_bars(band):
        top_of_answers = float(layout.answers.centers()[..., 1].min()) - layout.bubble.height_mm
        header = (0.0, 0.0, layout.page_width_mm, max(y1 + margin, top_of_answers))
        found = _decode_region(pyzbar, _warp_region(gray, homography, header, rate), "header")
    return found


def _decode_band(pyzbar: Any, band: NDArray[np.uint8]) -> BarcodeRead | None:
    """The code in an upright band across the bars: first averaged down to four rows, then whole.

    zbar scans every row and column of what it is given: four rows (each a quarter of
    the band, smoothed along the bars) decode in a third of the time on a clean label;
    the band itself gives a damaged one more lines to try.
    """
    rows = cv2.resize(band, (band.shape[1], 4), interpolation=cv2.INTER_AREA)
    return _decode_region(pyzbar, rows, "box", otsu=False) or _decode_region(pyzbar, band, "box")


def _decode_region(
    pyzbar: Any, region: NDArray[np.uint8], where: str, *, otsu: bool = True
) -> BarcodeRead | None:
    """The first Code 128 symbol zbar finds in ``region`` as scanned, else (``otsu``) after Otsu."""
    candidates = [region]
    if otsu:
        candidates.append(cv2.threshold(region, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)[1])
    for candidate in candidates:
        found = _first_code(pyzbar.decode(candidate, symbols=[pyzbar.ZBarSymbol.CODE128]), where)
        if found:
            return found
    return None


#: the finest resolution (px/mm) a label is decoded at, for thin modules (600 DPI: 23.6)
MAX_FULL_RATE = 12.0
#: a band across a barcode's bars has at least this many ink/paper edges along a row
#: (a 9-digit Code 128 has ~30 bars, ~60 edges; a sticker over half of them leaves ~25;
#: a pen stroke or a smudge across an empty box gives 0-4)
MIN_BAR_EDGES = 12
#: and ink this much darker than its paper (grey levels, 5th against 95th percentile)
MIN_BAR_CONTRAST = 50


def _holds_bars(band: NDArray[np.uint8]) -> bool:
    """True when an upright band across the barcode box shows a barcode's bars."""
    lo, hi = np.percentile(band, [5, 95])
    if hi - lo < MIN_BAR_CONTRAST:
        return False
    dark = band < (lo + hi) / 2
    edges = np.count_nonzero(dark[:, 1:] != dark[:, :-1], axis=1)
    return float(np.median(edges)) >= MIN_BAR_EDGES


def _warp_region(
    gray: NDArray[np.uint8], homography: NDArray[np.float64], rect_mm: tuple[float, ...], rate: float
) -> NDArray[np.uint8]:
    """The layout rectangle ``[x0, y0, x1, y1]`` mm cut out upright at ``rate`` px/mm."""
    x0, y0, x1, y1 = rect_mm
    out_w, out_h = int(round((x1 - x0) * rate)), int(round((y1 - y0) * rate))
    # output pixel (u, v) centre -> layout mm -> image px
    to_mm = np.array([[1 / rate, 0, x0 + 0.5 / rate], [0, 1 / rate, y0 + 0.5 / rate], [0, 0, 1]])
    return cv2.warpPerspective(
        gray,
        homography @ to_mm,
        (out_w, out_h),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderValue=255,
    )


def _first_code(decoded: list[Any], where: str) -> BarcodeRead | None:
    """The first decoded symbol, as text (zbar gives bytes)."""
    for symbol in decoded:
        try:
            text = symbol.data.decode("ascii")
        except UnicodeDecodeError:
            continue
        return BarcodeRead(data=text, symbology=str(symbol.type), where=where)
    return None


# -- code number from the grid, and the cross-check -------------------------------------


def read_grid_digits(states: NDArray[np.int8], row_labels: str) -> str:
    """One character per grid column from (columns, rows) box states.

    A digit when exactly one box of the column is marked; ``-`` none; ``*``
    several; ``?`` an ambiguous box.

    >>> read_grid_digits(np.array([[0, 1, 0], [0, 0, 0], [1, 0, 1], [2, 0, 0]], np.int8), "012")
    '1-*?'
    """
    from omr.marks import read_responses

    return read_responses(states, row_labels)


@dataclass(frozen=True, slots=True)
class CodeNumberRead:
    """The established code number ("" when none) and the reasons to look at it."""

    code_number: str
    barcode: str | None
    grid: str
    flags: tuple[str, ...]


#: flags after which a person must check the code number
CODE_REVIEW_FLAGS = frozenset({"code_unreadable", "code_mismatch", "check_digit"})


def resolve_code_number(barcode: str | None, grid: str, digits: int) -> CodeNumberRead:
    """Cross-check the barcode (primary) with the bubble grid (fallback), spec §3.

    - a valid barcode (``digits`` digits, Luhn) is the code; a grid digit that is
      marked and differs from it → ``code_mismatch``;
    - a barcode that decodes but fails the check → ``check_digit`` (kept, not replaced);
    - no barcode → the grid when complete (``barcode_unreadable``, informational),
      ``check_digit`` when its Luhn fails, else ``code_unreadable``.

    >>> resolve_code_number("123456782", "123456782", 9).flags
    ()
    >>> resolve_code_number("123456782", "123456783", 9).flags
    ('code_mismatch',)
    >>> resolve_code_number(None, "---------", 9).flags
    ('barcode_unreadable', 'code_unreadable')
    """
    flags: list[str] = []
    grid_complete = len(grid) == digits and grid.isdigit()

    def disagrees(code: str) -> bool:
        return len(code) == len(grid) and any(g.isdigit() and g != c for g, c in zip(grid, code, strict=True))

    if barcode is not None and is_valid_code(barcode, digits):
        if disagrees(barcode):
            flags.append("code_mismatch")
        return CodeNumberRead(barcode, barcode, grid, tuple(flags))
    if barcode is not None:
        flags.append("check_digit")
        if grid_complete and disagrees(barcode):
            flags.append("code_mismatch")
        code = barcode if barcode.isdigit() else ""
        if not code:
            flags.append("code_unreadable")
        return CodeNumberRead(code, barcode, grid, tuple(flags))
    flags.append("barcode_unreadable")
    if grid_complete:
        if not is_valid_code(grid, digits):
            flags.append("check_digit")
        return CodeNumberRead(grid, None, grid, tuple(flags))
    flags.append("code_unreadable")
    return CodeNumberRead("", None, grid, tuple(flags))


def read_version(states: NDArray[np.int8], labels: str) -> tuple[str, tuple[str, ...]]:
    """The version letter ("" when not established) and its flags.

    >>> read_version(np.array([0, 1, 0, 0], np.int8), "ABCD")
    ('B', ())
    """
    from omr.marks import read_responses

    char = read_responses(states[None, :], labels)
    if char == "-":
        return "", ("version_missing",)
    if char == "*":
        return "", ("version_multiple",)
    if char == "?":
        return "", ("version_ambiguous",)
    return char, ()


# -- the part number of a card of several parts ------------------------------------------


@dataclass(frozen=True, slots=True)
class PartRead:
    """The part of a card of several parts, and the code number part of its barcode.

    barcode_code : the barcode text without its part digit (what `resolve_code_number`
        checks), None when no barcode decoded
    part : the part label (``"1"``, ``"2"``...), "" when not established (and on a
        layout without parts)
    row : what the part row reads (one character, spec §2 rule)
    flags : ``part_mismatch`` (barcode and row name different parts; the barcode is
        kept), ``part_unreadable`` (neither gives one), ``part_row_unreadable`` (the row
        confirms nothing; informational: the barcode decided)
    """

    barcode_code: str | None
    part: str = ""
    row: str = ""
    flags: tuple[str, ...] = ()


#: part flags after which a person must look at the card
PART_REVIEW_FLAGS = frozenset({"part_mismatch", "part_unreadable"})


def read_part(part_states: NDArray[np.int8] | None, barcode: str | None, layout: CardLayout) -> PartRead:
    """Split the barcode into code number and part digit, and cross-check the part row.

    On a layout with ``parts`` the barcode holds the code number and then the part
    digit (``code_then_part``): a barcode of ``digits + 1`` decimal digits gives both;
    any other barcode is passed on whole as the code number (and gives no part).  The
    barcode's part decides; the row (a part printed filled) confirms it, or decides
    when there is no usable barcode part.  ``part_states`` are the part row's box
    states (None on a layout without parts: the barcode is the code number).

    >>> from omr.layout import load_layout
    >>> lay = load_layout("cem-100")
    >>> read_part(np.array([0, 1], np.int8), "1234567822", lay)
    PartRead(barcode_code='123456782', part='2', row='2', flags=())
    >>> read_part(np.array([1, 0], np.int8), "1234567822", lay).flags
    ('part_mismatch',)
    >>> read_part(np.array([0, 0], np.int8), None, lay).flags
    ('part_unreadable',)
    """
    if layout.parts is None or part_states is None:
        return PartRead(barcode)
    from omr.marks import read_responses

    labels = layout.parts.labels
    row = read_responses(part_states[None, :], labels)
    digits = layout.code_grid.digits
    code, from_barcode = barcode, ""
    if barcode is not None and len(barcode) == digits + 1 and barcode.isdigit():
        code, from_barcode = barcode[:digits], barcode[digits]
    if from_barcode in labels and from_barcode:
        if row in labels and row != from_barcode:
            return PartRead(code, from_barcode, row, ("part_mismatch",))
        return PartRead(code, from_barcode, row, () if row == from_barcode else ("part_row_unreadable",))
    # no part in the barcode (none decoded, or a digit that is no part): the row decides
    flags = ("part_mismatch",) if from_barcode else ()
    if row in labels:
        return PartRead(code, row, row, flags)
    return PartRead(code, "", row, (*flags, "part_unreadable"))
