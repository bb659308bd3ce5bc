"""The printed blank card: a raster of a `CardLayout` at any DPI, and print-ready PDF.

Pixel convention (used by `omr.synth` and its ground truth too)::

    pixel (col, row) is the unit square whose centre is at integer coordinates
    (col, row); a point at x mm lies at  col = x * dpi / 25.4 - 0.5
                                         row = y * dpi / 25.4 - 0.5

    x mm:   0        25.4/dpi    2*25.4/dpi
            |-----------|-----------|
    col:       0 (centre)     1

so the page edge is at -0.5 and an A4 page at ``dpi`` spans
``round(210 * dpi / 25.4)`` columns.  `mm_to_px` is that affine map.

What is drawn (all positions from the layout, nothing hard-coded but the type sizes):

* four solid black square markers, the ``orientation_hole`` marker with a white
  square hole at its centre -- drawn with exact area coverage, so their centroids are
  exact;
* every bubble (answers, code grid, version) as a rounded rectangle whose *outer* edge
  is ``bubble.width`` x ``bubble.height``; the dark outline (``outline_width``) lies
  inside that rectangle, and a light-grey letter/digit (gray 185, not a mark) sits in
  the middle;
* question numbers, option headers, grid digits, the title and the labels
  ``KOD`` / ``WERSJA`` in dark grey, all outside the bubbles and outside every marker's
  quiet zone;
* the Code 128 barcode of the code number (module pattern from python-barcode, bars
  drawn here with exact coverage), centred in ``barcode.box`` with >= 10-module quiet
  zones and the digits under it when ``text_below``;
* on a card of several parts (``parts`` in the layout): the part row with the card's
  own part printed filled, the label ``CZESC``, the line ``CZESC p z n: pytania a-b``
  under the barcode box, question numbers of the whole test (101-200 on part 2), and
  the barcode holds the code number followed by the part digit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from omr.layout import CardLayout

__all__ = [
    "RenderStyle",
    "barcode_modules",
    "barcode_payload",
    "card_parts",
    "draw_barcode",
    "mm_to_px",
    "page_size_px",
    "render_blank",
    "render_card",
    "render_pdf",
    "write_png",
]

MM_PER_INCH = 25.4


@dataclass(frozen=True, slots=True)
class RenderStyle:
    """Gray levels and type sizes of the printed card (0 black .. 255 white)."""

    paper_u8: int = 255
    ink_u8: int = 0
    outline_u8: int = 40
    label_in_box_u8: int = 185
    text_u8: int = 50
    letter_height_mm: float = 1.7
    number_height_mm: float = 1.9
    title_height_mm: float = 4.0
    label_height_mm: float = 2.2
    barcode_quiet_modules: int = 10
    barcode_text_height_mm: float = 2.6
    barcode_max_module_mm: float = 0.8


def mm_to_px(dpi: float) -> NDArray[np.float64]:
    """(3, 3) affine map from page millimetres to pixel coordinates at ``dpi``.

    >>> mm_to_px(25.4) @ [1.0, 2.0, 1.0]
    array([0.5, 1.5, 1. ])
    """
    s = dpi / MM_PER_INCH
    return np.array([[s, 0.0, -0.5], [0.0, s, -0.5], [0.0, 0.0, 1.0]])


def page_size_px(layout: CardLayout, dpi: float) -> tuple[int, int]:
    """``(width, height)`` in pixels of the page at ``dpi`` (rounded)."""
    s = dpi / MM_PER_INCH
    return round(layout.page_width_mm * s), round(layout.page_height_mm * s)


def barcode_modules(code: str) -> NDArray[np.bool_]:
    """(M,) bool Code 128 module pattern of the digit string ``code`` (True = bar).

    Code set C (digit pairs), a trailing odd digit in code set B; the bar patterns,
    start/stop codes come from python-barcode's tables.  Its own encoder is not used:
    python-barcode 0.16 drops a leading "99" pair (it mistakes the digits 99 right
    after Start C for a "switch to C" code), so 999931413 would print as 9931413.

    >>> barcode_modules("123456782").shape
    (101,)
    """
    from barcode.charsets import code128  # imported here: only rendering needs it

    if not code.isdigit():
        raise ValueError(f"barcode: only digits are printed, got {code!r}")
    values = [code128.START_CODES["C"]]
    values += [int(code[i : i + 2]) for i in range(0, len(code) - len(code) % 2, 2)]
    if len(code) % 2:
        values += [code128.C["TO_B"], code128.B[code[-1]]]  # switch to set B, then the digit
    checksum = (values[0] + sum(i * v for i, v in enumerate(values[1:], start=1))) % 103
    # the stop pattern ends with a 2-module termination bar the table leaves out
    pattern = "".join(code128.CODES[v] for v in [*values, checksum]) + code128.STOP + "11"
    return np.frombuffer(pattern.encode("ascii"), dtype=np.uint8) == ord("1")


# -- low-level drawing ------------------------------------------------------------------


def _coverage_1d(edges_lo: float, edges_hi: float, n: int) -> NDArray[np.float64]:
    """(n,) share of each pixel [i, i+1] covered by the interval [lo, hi] (edge coords)."""
    i = np.arange(n, dtype=np.float64)
    return np.clip(np.minimum(edges_hi, i + 1) - np.maximum(edges_lo, i), 0.0, 1.0)


def _blend(
    img: NDArray[np.uint8], rows: slice, cols: slice, alpha: NDArray[np.float64], value: float
) -> None:
    """Paint ``value`` with per-pixel coverage ``alpha`` into ``img[rows, cols]`` in place."""
    patch = img[rows, cols].astype(np.float64)
    img[rows, cols] = np.rint(patch + (value - patch) * alpha).astype(np.uint8)


def _fill_rect(img: NDArray[np.uint8], rect_mm: Sequence[float], value: float, s: float) -> None:
    """Axis-aligned rectangle ``[x0, y0, x1, y1]`` mm with exact area-coverage antialiasing."""
    x0, y0, x1, y1 = (v * s for v in rect_mm)  # pixel edge coordinates
    c0, c1 = max(int(np.floor(x0)), 0), min(int(np.ceil(x1)), img.shape[1])
    r0, r1 = max(int(np.floor(y0)), 0), min(int(np.ceil(y1)), img.shape[0])
    if c1 <= c0 or r1 <= r0:
        return
    cx = _coverage_1d(x0 - c0, x1 - c0, c1 - c0)
    cy = _coverage_1d(y0 - r0, y1 - r0, r1 - r0)
    _blend(img, slice(r0, r1), slice(c0, c1), np.outer(cy, cx), value)


def _rounded_box_sdf(
    u: NDArray[np.float32], v: NDArray[np.float32], half_w: float, half_h: float, r: float
) -> NDArray[np.float32]:
    """Signed distance (mm, negative inside) to a centred rounded rectangle."""
    qx = np.abs(u) - (half_w - r)
    qy = np.abs(v) - (half_h - r)
    outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
    return outside + np.minimum(np.maximum(qx, qy), 0) - r


def _put_text(
    img: NDArray[np.uint8],
    text: str,
    x_mm: float,
    y_mm: float,
    height_mm: float,
    value: int,
    s: float,
    anchor: str = "center",
    max_width_mm: float | None = None,
) -> None:
    """Text whose cap height is ``height_mm``, vertically centred on ``y_mm``.

    ``anchor`` says what ``x_mm`` is: the text's ``center``, ``left`` or ``right`` end;
    text wider than ``max_width_mm`` is scaled down to fit.
    """
    # the built-in font's capitals are 20 px tall at scale 1
    scale = height_mm * s / 20.0
    (w, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    if max_width_mm is not None and w > max_width_mm * s:
        scale *= max_width_mm * s / w
        height_mm *= max_width_mm * s / w
        (w, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x = x_mm * s - 0.5
    if anchor == "center":
        x -= w / 2
    elif anchor == "right":
        x -= w
    y = y_mm * s - 0.5 + height_mm * s / 2
    cv2.putText(img, text, (round(x), round(y)), cv2.FONT_HERSHEY_SIMPLEX, scale, (int(value),), 1,
                cv2.LINE_AA)


def _draw_bubbles(img: NDArray[np.uint8], layout: CardLayout, s: float, style: RenderStyle) -> None:
    """Outlines by signed-distance coverage (exact on straight edges), then the letters.

    (OpenCV's antialiased polygon fill misplaces edges by up to half a pixel.)
    """
    b = layout.bubble
    centres = layout.box_centers()
    ow = min(b.outline_width_mm, min(b.width_mm, b.height_mm) / 4)
    r = float(np.clip(b.corner_radius_mm, 0.0, min(b.width_mm, b.height_mm) / 2))
    pw, ph = math.ceil(b.width_mm * s) + 4, math.ceil(b.height_mm * s) + 4
    cols0 = np.floor(centres[:, 0] * s - pw / 2).astype(np.int64)
    rows0 = np.floor(centres[:, 1] * s - ph / 2).astype(np.int64)
    chunk = 256  # bounds memory at 600 DPI
    for start in range(0, len(centres), chunk):
        sl = slice(start, start + chunk)
        # pixel centres (i + 0.5 in edge coordinates) relative to each box centre, mm
        u = ((cols0[sl, None] + np.arange(pw) + 0.5) / s - centres[sl, :1]).astype(np.float32)
        v = ((rows0[sl, None] + np.arange(ph) + 0.5) / s - centres[sl, 1:]).astype(np.float32)
        sd = _rounded_box_sdf(u[:, None, :], v[:, :, None], b.width_mm / 2, b.height_mm / 2, r)
        alpha = np.clip(0.5 - sd * s, 0, 1) - np.clip(0.5 - (sd + ow) * s, 0, 1)
        for r0, c0, a in zip(rows0[sl], cols0[sl], alpha, strict=True):
            _blend(img, slice(int(r0), int(r0) + ph), slice(int(c0), int(c0) + pw),
                   a.astype(np.float64), style.outline_u8)

    letter_h = min(style.letter_height_mm, b.height_mm * 0.6)
    labels: list[str] = []
    labels += list(layout.answers.options) * layout.answers.questions
    labels += list(layout.code_grid.row_labels) * layout.code_grid.columns
    labels += list(layout.version.labels)
    if layout.parts is not None:
        labels += list(layout.parts.labels)
    for (x, y), label in zip(centres, labels, strict=True):
        _put_text(img, label, x, y, letter_h, style.label_in_box_u8, s)


def _check_part(layout: CardLayout, part: int | None) -> int:
    """The part to print (0 on a layout without parts); ValueError when it does not fit."""
    if layout.parts is None:
        if part is not None:
            raise ValueError(f"layout {layout.name} has no parts; give no part, got {part}")
        return 0
    if part is None or not 1 <= part <= layout.parts.count:
        raise ValueError(f"layout {layout.name} is a card of {layout.parts.count} parts: give a part "
                         f"1..{layout.parts.count}, got {part}")
    return part


def _draw_part(img: NDArray[np.uint8], layout: CardLayout, part: int, s: float, style: RenderStyle) -> None:
    """The card's part: its bubble printed filled, the row's label and the line under the barcode."""
    assert layout.parts is not None
    b = layout.bubble
    x, y = layout.parts.centers()[part - 1]
    inset = b.outline_width_mm + min(b.corner_radius_mm, 0.5) * 0.3
    _fill_rect(img, (x - b.width_mm / 2 + inset, y - b.height_mm / 2 + inset,
                     x + b.width_mm / 2 - inset, y + b.height_mm / 2 - inset), style.ink_u8, s)
    first = layout.parts.centers()[0]
    label_y = first[1] - b.height_mm / 2 - 1.0 - style.label_height_mm / 2
    _put_text(img, "CZESC", first[0] - b.width_mm / 2, label_y, style.label_height_mm, style.text_u8, s,
              anchor="left")
    q = layout.answers.questions
    x0, _, x1, y1 = layout.barcode.box_mm
    _put_text(img, f"CZESC {part} z {layout.parts.count}: pytania {(part - 1) * q + 1}-{part * q}", x0,
              y1 + 1.5 + style.label_height_mm, style.label_height_mm * 1.4, style.ink_u8, s, anchor="left",
              max_width_mm=x1 - x0)


def _draw_texts(
    img: NDArray[np.uint8], layout: CardLayout, s: float, style: RenderStyle, part: int = 0
) -> None:
    b = layout.bubble
    a = layout.answers
    num_h = min(style.number_height_mm, b.height_mm * 0.7)
    centres = a.centers()  # (Q, C, 2)
    gap = b.width_mm / 2 + 0.8
    first_number = max(part - 1, 0) * a.questions + 1  # part 2 of 100s: 101..200
    for q in range(a.questions):
        x, y = centres[q, 0]
        _put_text(img, f"{q + first_number}.", x - gap, y, num_h, style.text_u8, s, anchor="right")
    # option letters above each block's first row
    head_y = a.first_center_mm[1] - b.height_mm / 2 - 1.0 - num_h / 2
    blocks = -(-a.questions // a.rows_per_block)
    for block in range(blocks):
        q = block * a.rows_per_block
        for k, letter in enumerate(a.options):
            _put_text(img, letter, centres[q, k, 0], head_y, num_h, style.text_u8, s)

    g = layout.code_grid
    gc = g.centers()  # (columns, rows, 2)
    for d, digit in enumerate(g.row_labels):
        x, y = gc[0, d]
        _put_text(img, digit, x - gap, y, num_h, style.text_u8, s, anchor="right")
    col_y = g.first_center_mm[1] - b.height_mm / 2 - 0.8 - num_h / 2
    for j in range(g.columns):
        _put_text(img, str(j + 1), gc[j, 0, 0], col_y, num_h * 0.8, style.text_u8, s)
    label_y = col_y - num_h / 2 - 1.0 - style.label_height_mm / 2
    _put_text(img, "KOD", gc[0, 0, 0] - b.width_mm / 2, label_y, style.label_height_mm,
              style.text_u8, s, anchor="left")

    v = layout.version.centers()
    _put_text(img, "WERSJA", v[0, 0] - b.width_mm / 2, label_y, style.label_height_mm,
              style.text_u8, s, anchor="left")

    m = layout.markers
    top = float(m.centers()[:, 1].min())
    title_y = top + m.side_mm / 2 + m.quiet_zone_mm + 0.6 + style.title_height_mm / 2
    first_box_top = float(layout.box_centers()[:, 1].min()) - b.height_mm / 2
    title_y = min(title_y, first_box_top - 6.0)
    if layout.title:
        left = float(layout.box_centers()[:, 0].min()) - b.width_mm / 2
        bx0, by0, _, _ = layout.barcode.box_mm
        right = bx0 - 2.0 if by0 < title_y + style.title_height_mm else layout.page_width_mm - left
        _put_text(img, layout.title, left, title_y, style.title_height_mm, style.ink_u8, s,
                  anchor="left", max_width_mm=max(right - left, 10.0))


def _draw_markers(img: NDArray[np.uint8], layout: CardLayout, s: float, style: RenderStyle) -> None:
    m = layout.markers
    half = m.side_mm / 2
    for (x, y) in m.centers():
        _fill_rect(img, (x - half, y - half, x + half, y + half), style.ink_u8, s)
    hx, hy = m.centers()[0]  # the validator allows the hole only on the top-left marker
    hh = m.hole_side_mm / 2
    _fill_rect(img, (hx - hh, hy - hh, hx + hh, hy + hh), style.paper_u8, s)


def render_blank(
    layout: CardLayout, *, dpi: float, style: RenderStyle | None = None, part: int | None = None
) -> NDArray[np.uint8]:
    """The card without its barcode: markers, bubbles and all printed text.

    Everything on a card but the barcode is the same for every candidate, so batch
    renderers draw this once per DPI (and part) and add the barcode with `draw_barcode`.

    Parameters
    ----------
    layout : CardLayout
    dpi : float
        Resolution; the image is ``page_size_px(layout, dpi)``.
    style : RenderStyle, optional
    part : int, optional
        Which part (1-based) on a layout of several parts (required there, refused
        elsewhere): its bubble printed filled, its question numbers and its line.

    Returns
    -------
    page : (H, W) uint8 ndarray
        White paper (255), black ink (0), antialiased.

    Example
    -------
    >>> from omr.layout import load_layout
    >>> render_blank(load_layout(), dpi=100).shape
    (1169, 827)
    """
    if not dpi > 0:
        raise ValueError(f"dpi must be > 0, got {dpi}")
    part = _check_part(layout, part)
    style = style or RenderStyle()
    s = dpi / MM_PER_INCH
    width, height = page_size_px(layout, dpi)
    img = np.full((height, width), style.paper_u8, dtype=np.uint8)
    _draw_bubbles(img, layout, s, style)
    _draw_texts(img, layout, s, style, part)
    if part:
        _draw_part(img, layout, part, s, style)
    _draw_markers(img, layout, s, style)
    return img


def barcode_payload(layout: CardLayout, code_number: str, part: int | None = None) -> str:
    """What the barcode holds: the code number, followed by the part digit on a card of parts.

    >>> from omr.layout import load_layout
    >>> barcode_payload(load_layout("cem-100"), "123456782", 2)
    '1234567822'
    """
    p = _check_part(layout, part)
    return f"{code_number}{p}" if p else code_number


def draw_barcode(
    page: NDArray[np.uint8],
    layout: CardLayout,
    code_number: str,
    *,
    dpi: float,
    style: RenderStyle | None = None,
) -> None:
    """Draw the Code 128 barcode of ``code_number`` into ``barcode.box`` of ``page`` in place.

    The symbol (with ``barcode_quiet_modules`` of white each side) is scaled to fill the
    box width, capped at ``barcode_max_module_mm`` per module, centred; bars take the
    box height minus the digits under them when ``text_below``.

    Raises
    ------
    ValueError
        if ``code_number`` is not a string of decimal digits.
    """
    if not (isinstance(code_number, str) and code_number.isdigit()):
        raise ValueError(f"code number must be decimal digits, got {code_number!r}")
    style = style or RenderStyle()
    s = dpi / MM_PER_INCH
    x0, y0, x1, y1 = layout.barcode.box_mm
    modules = barcode_modules(code_number)
    n = modules.size
    module_mm = min((x1 - x0) / (n + 2 * style.barcode_quiet_modules), style.barcode_max_module_mm)
    left_mm = (x0 + x1) / 2 - n * module_mm / 2
    text_h = style.barcode_text_height_mm if layout.barcode.text_below else 0.0
    bars_bottom = y1 - (text_h + 1.2 if text_h else 0.0)
    # coverage of each pixel column by bars: the integral of the module pattern
    c0, c1 = int(np.floor(left_mm * s)), int(np.ceil((left_mm + n * module_mm) * s))
    r0, r1 = int(np.floor(y0 * s)), int(np.ceil(bars_bottom * s))
    cumulative = np.concatenate([[0.0], np.cumsum(modules, dtype=np.float64)])
    edges = (np.arange(c0, c1 + 1) / s - left_mm) / module_mm
    integral = np.interp(edges, np.arange(n + 1, dtype=np.float64), cumulative)
    cx = np.diff(integral) * (module_mm * s)  # dark modules per pixel -> dark share
    cy = _coverage_1d(y0 * s - r0, bars_bottom * s - r0, r1 - r0)
    _blend(page, slice(r0, r1), slice(c0, c1), np.outer(cy, cx), style.ink_u8)
    if text_h:
        _put_text(page, code_number, (x0 + x1) / 2, y1 - text_h / 2 - 0.3, text_h,
                  style.ink_u8, s)


def render_card(
    layout: CardLayout,
    code_number: str,
    *,
    dpi: float,
    style: RenderStyle | None = None,
    blank: NDArray[np.uint8] | None = None,
    part: int | None = None,
) -> NDArray[np.uint8]:
    """Render the printed card of one candidate.

    Parameters
    ----------
    layout : CardLayout
    code_number : str
        Decimal digits to print as the Code 128 barcode (normally 9 with a Luhn check
        digit; anything numeric is drawn, so tests can print invalid numbers).
    dpi : float
        Resolution in dots per inch.
    style : RenderStyle, optional
    blank : (H, W) uint8 ndarray, optional
        A `render_blank` result at the same ``dpi`` (and ``part``) to start from (not
        modified); saves redrawing the card for every candidate.
    part : int, optional
        The part (1-based) on a layout of several parts (`render_blank`); the barcode
        then holds the code number and the part digit (`barcode_payload`).

    Returns
    -------
    card : (H, W) uint8 ndarray
        ``(H, W)`` is the page at ``dpi`` (A4 at 300 DPI: 3508 x 2480); paper 255, ink 0.
        A point at ``(x, y)`` mm is at pixel ``(x * dpi / 25.4 - 0.5, y * dpi / 25.4 - 0.5)``.

    Raises
    ------
    ValueError
        for a non-numeric ``code_number``, ``dpi <= 0`` or a ``blank`` of the wrong size.

    Example
    -------
    >>> from omr.layout import load_layout
    >>> render_card(load_layout(), "123456782", dpi=100).shape
    (1169, 827)
    """
    payload = barcode_payload(layout, code_number, part)
    if blank is None:
        page = render_blank(layout, dpi=dpi, style=style, part=part)
    else:
        width, height = page_size_px(layout, dpi)
        if blank.shape != (height, width) or blank.dtype != np.uint8:
            raise ValueError(
                f"blank: expected ({height}, {width}) uint8 for {dpi} DPI, got "
                f"{blank.shape} {blank.dtype}; render it with render_blank(layout, dpi={dpi})"
            )
        page = blank.copy()
    draw_barcode(page, layout, payload, dpi=dpi, style=style)
    return page


def card_parts(layout: CardLayout, parts: Sequence[int] | None = None) -> tuple[int | None, ...]:
    """The parts to print for each candidate: ``parts`` checked, every part by default,
    ``(None,)`` on a layout without parts."""
    if layout.parts is None:
        if parts:
            raise ValueError(f"layout {layout.name} has no parts; give no parts, got {list(parts)}")
        return (None,)
    chosen = tuple(parts) if parts else tuple(range(1, layout.parts.count + 1))
    for p in chosen:
        _check_part(layout, p)
    return chosen


def write_png(path: str | Path, image: NDArray[np.uint8], *, dpi: float) -> Path:
    """Write a gray (H, W) or BGR (H, W, 3) image as PNG with its DPI recorded."""
    from PIL import Image

    path = Path(path)
    rgb = image if image.ndim == 2 else image[..., ::-1]
    Image.fromarray(np.ascontiguousarray(rgb)).save(path, format="PNG", dpi=(dpi, dpi))
    return path


def render_pdf(
    layout: CardLayout,
    codes: Sequence[str],
    path: str | Path,
    *,
    dpi: float = 600,
    style: RenderStyle | None = None,
    parts: Sequence[int] | None = None,
) -> Path:
    """Write a print-ready PDF: one A4 page per code number (and part).

    On a layout of several parts each code number gets one page per part of ``parts``
    (default: every part, in order), so a candidate's cards lie together.

    Pages are 1-bit rasters at ``dpi``, error-diffusion dithered so the light-grey
    letters print light; the PDF page size is the layout's page size because the
    image resolution is recorded as ``dpi``.

    Parameters
    ----------
    layout : CardLayout
    codes : sequence of str
        Code numbers, one page each (at least one).
    path : str or Path
        Output file.
    dpi : float
        Raster resolution (600 for print).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError
        when ``codes`` is empty or holds a non-numeric code.
    """
    from PIL import Image

    if not codes:
        raise ValueError("render_pdf needs at least one code number")
    path = Path(path)
    wanted: list[int | None] = list(card_parts(layout, parts))
    blanks = {p: render_blank(layout, dpi=dpi, style=style, part=p) for p in wanted}
    pages = []
    for code, p in ((code, p) for code in codes for p in wanted):
        gray = render_card(layout, code, dpi=dpi, style=style, blank=blanks[p], part=p)
        # dithering keeps the letters light grey; a plain threshold would print them black
        pages.append(Image.fromarray(gray).convert("1", dither=Image.Dither.FLOYDSTEINBERG))
    pages[0].save(path, format="PDF", save_all=True, append_images=pages[1:], resolution=dpi,
                  creationDate=None, modDate=None)  # no dates: same cards, same bytes
    return path
