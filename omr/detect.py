"""Find the card on a scanned page: corner markers, orientation, page homography.

Coordinates: layout points are millimetres ``(x, y)`` (x right, y down); image points
are pixels ``(x, y)`` with the centre of pixel ``[row, col]`` at ``(col, row)``.

How a page is registered::

    gray page ──1/f resize──► work image (long side 700–1400 px)
        │                      │ Otsu → dark blobs → square, solid ones = candidates
        │                      │ best 4 of them forming the marker rectangle (190 × 277)
        │                      ▼
        │            4 rough marker centres ── which one has the white hole? = top-left
        │                      │                 (gives 0/90/180/270° turn)
        ▼                      ▼
    full-resolution window per marker: threshold half-way between ink and paper,
    the marker's 4 corners + centre  ──►  least-squares homography over all 20 points

The hole is what tells a card fed upside down from a right one; a page with no
marker quadruple, no hole, or two holes is not read (``MarkerNotFoundError``).
Damaged pages get more passes (looser shapes, darker thresholds, three markers), and a
fit that is not good is redone on cleaned marker masks (specks opened off, light lines
closed); `marker_registrations` yields each registration found, so that a caller that
finds the printed outlines elsewhere can ask for the next.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TypeVar

import cv2
import numpy as np
from numpy.typing import NDArray

from omr.errors import MarkerNotFoundError, PageNotFoundError
from omr.layout import CardLayout
from omr.stats import median, median_rows

__all__ = [
    "DetectParams",
    "Registration",
    "check_image",
    "make_work_image",
    "marker_registrations",
    "project_points",
    "register_page",
    "to_page_px",
    "to_work_px",
]


@dataclass(frozen=True, slots=True)
class DetectParams:
    """Tuning of the marker search (units in the names)."""

    work_long_side_px: int = 700
    max_marker_aspect: float = 1.25
    min_marker_solidity: float = 0.80
    max_candidates: int = 14
    #: stop looking in a corner window after this many square blobs (largest first);
    #: 0 = look at all ``max_candidates``
    max_squares_per_corner: int = 0
    max_marker_size_spread: float = 1.6
    max_side_ratio_error: float = 0.15
    max_marker_scale_error: float = 0.45
    min_hole_contrast: float = 0.45
    max_residual_mm: float = 0.6
    min_paper_contrast_u8: int = 40


#: share of each scan dimension searched for markers from each corner (markers are 10 mm
#: from the page's edges: these windows hold them at any turn, skew or offset a scanner
#: gives)
CORNER_WINDOW = 0.36
#: the first, quick pass's windows: a usual scan, the page filling most of it
FIRST_CORNER_WINDOW = 0.25


@dataclass(frozen=True, slots=True)
class Registration:
    """Where the card lies in the image.

    homography : (3, 3) layout millimetres -> image pixels
    marker_centers_px : (4, 2) measured marker centres, layout order TL, TR, BR, BL
    rotation_deg : how the card was turned on the scanner: 0, 90, 180 or 270 (clockwise)
    px_per_mm : mean scale of the scan
    residual_mm : RMS distance between the fitted and measured registration points
    ink_u8, paper_u8 : marker ink and surrounding paper levels measured on the page
    mirrored : the image shows the card mirrored (left and right swapped); the
        homography already maps the layout onto the image as it is
    missing_marker : layout index (TL, TR, BR, BL = 0..3) of a marker not found (the card
        was registered on the other three), or -1
    """

    homography: NDArray[np.float64]
    marker_centers_px: NDArray[np.float64]
    rotation_deg: int
    px_per_mm: float
    residual_mm: float
    ink_u8: float
    paper_u8: float
    mirrored: bool = False
    missing_marker: int = -1


def check_image(image: NDArray[np.uint8], name: str = "image") -> None:
    """Raise ValueError unless ``image`` is a 2-D uint8 array (a grayscale page)."""
    if not isinstance(image, np.ndarray) or image.ndim != 2 or image.dtype != np.uint8:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise ValueError(f"{name}: expected a (H, W) uint8 grayscale array, got shape {shape} {dtype}")


def project_points(homography: NDArray[np.float64], points: NDArray[np.float64]) -> NDArray[np.float64]:
    """Map ``(..., 2)`` points through a 3×3 homography."""
    pts = np.asarray(points, dtype=np.float64)
    return cv2.perspectiveTransform(pts.reshape(-1, 1, 2), homography).reshape(pts.shape)


def make_work_image(gray: NDArray[np.uint8], min_long_side_px: int) -> tuple[NDArray[np.uint8], int]:
    """The page shrunk by an integer factor ``f`` so its long side stays >= ``min_long_side_px``.

    Returns the small image and ``f``.  The small image's pixel ``(x, y)`` covers the
    page's pixels around ``(f*x + (f-1)/2, f*y + (f-1)/2)`` (`to_page_px`).  A linear
    resize to 1/f followed by a 3x3 box blur costs ~0.5 ms at 300 DPI (INTER_AREA
    ~4 ms, a Gaussian pyramid ~5 ms) and smooths noise enough for markers and paper.
    """
    h, w = gray.shape
    factor = max(1, max(h, w) // min_long_side_px)
    if factor == 1:
        return gray, 1
    rows, cols = h // factor, w // factor
    if factor % 2:
        # an odd factor puts a linear resize's sample points on pixel centres: it is a plain
        # decimation, and slicing reads one row in ``factor`` where the resize reads two
        # (0.46 against 0.82 ms at 300 DPI)
        offset = factor // 2
        small = np.ascontiguousarray(gray[offset::factor, offset::factor][:rows, :cols])
    else:
        # cropped to a whole multiple of the factor, so that `to_page_px` holds exactly
        whole = gray[: rows * factor, : cols * factor]
        small = cv2.resize(whole, (cols, rows), interpolation=cv2.INTER_LINEAR)
    return cv2.blur(small, (3, 3)), factor


def to_page_px(points: NDArray[np.float64], factor: int) -> NDArray[np.float64]:
    """Work-image pixel coordinates -> page pixel coordinates (see `make_work_image`)."""
    return np.asarray(points, dtype=np.float64) * factor + (factor - 1) / 2


def to_work_px(points: NDArray[np.float64], factor: int) -> NDArray[np.float64]:
    """Page pixel coordinates -> work-image pixel coordinates (see `make_work_image`)."""
    return (np.asarray(points, dtype=np.float64) - (factor - 1) / 2) / factor


def register_page(
    gray: NDArray[np.uint8],
    layout: CardLayout,
    params: DetectParams = DetectParams(),
    *,
    work: tuple[NDArray[np.uint8], int] | None = None,
) -> Registration:
    """Find the card's markers and fit the layout → image homography.

    The first registration of `marker_registrations`: see there.

    Raises
    ------
    PageNotFoundError
        The page is blank or has no contrast.
    MarkerNotFoundError
        No four markers form the card's rectangle, or the orientation hole is not
        found exactly once, or the fit is inconsistent.
    """
    return next(marker_registrations(gray, layout, params, work=work))


def marker_registrations(
    gray: NDArray[np.uint8],
    layout: CardLayout,
    params: DetectParams = DetectParams(),
    *,
    work: tuple[NDArray[np.uint8], int] | None = None,
    mirrored_input: bool = False,
) -> Iterator[Registration]:
    """Every registration the marker search finds, in the order it finds them.

    Each has passed the marker rectangle's shape, the one hole and the fit's residual;
    a caller that finds one wrong all the same (the printed outlines are not where it
    puts them: stains or dirt bands that passed for two markers) asks for the next.
    Registrations with the same markers as an earlier one are not repeated.

    Parameters
    ----------
    gray : (H, W) uint8 ndarray
        The scanned page, any resolution, any 90° turn, skewed up to ~±15°.
    layout : CardLayout
    params : DetectParams
    work : (image, factor), optional
        ``make_work_image(gray, params.work_long_side_px)`` when the caller has it.
    mirrored_input : bool
        ``gray`` is already the flipped image of a mirrored page (no second flip).

    Raises
    ------
    PageNotFoundError
        The page is blank or has no contrast (before anything is yielded).
    MarkerNotFoundError
        Nothing was found: no four markers form the card's rectangle, or the orientation
        hole is not found exactly once, or the fit is inconsistent (raised only when
        nothing was yielded; after a registration the iteration just ends).
    """
    check_image(gray, "gray")
    h, w = gray.shape
    if min(h, w) < 100:
        raise PageNotFoundError(f"page is {w}x{h} px: too small to hold a card; scan at >= 150 DPI")
    small, factor = work if work is not None else make_work_image(gray, params.work_long_side_px)
    # a marker dented by dirt, a fold or halftoning is no longer a neat square, and on a
    # stained page Otsu's level lets stains merge with a marker: the later passes loosen
    # the shape tests, then the threshold.  The rectangle of four, the one hole, the fit
    # residual and the printed outlines still have to agree, so a wrong quadruple is
    # rejected downstream rather than read.
    loose = replace(params, max_marker_aspect=1.6, min_marker_solidity=0.6)
    # the marker is the largest solid square of its corner window on a usual card, a
    # usual scan is evenly lit and holds the page with little margin: the first pass
    # takes the largest square of each corner of smaller, unflattened windows (~2 ms
    # less than flattening and shape-testing every candidate of the full windows), the
    # second the three largest of the flattened full windows; a page where neither
    # gives a marker rectangle that passes the hole test and the fit gets the full search
    first = replace(params, max_squares_per_corner=1)
    quick = replace(params, max_squares_per_corner=3)
    # the last passes keep only the darkest quarter (a marker is the page's blackest
    # ink; a dirt band or a bad copy's speckle touching it is greyer) and close the mask
    # by ~1 mm, across light lines that cut the marker; they come after the three-marker
    # fit, which on a page with one marker torn or covered fits better
    passes: tuple[tuple[DetectParams, float | None, bool, float] | None, ...] = (
        # shape tests, threshold (None: Otsu's; else share from ink to paper), flattened,
        # window share; None: register on three markers of the loose passes so far
        (first, None, False, FIRST_CORNER_WINDOW),
        (quick, None, True, CORNER_WINDOW),
        (params, None, True, CORNER_WINDOW),
        (loose, None, True, CORNER_WINDOW),
        (loose, 0.5, True, CORNER_WINDOW),
        None,
        (loose, 0.25, True, CORNER_WINDOW),
        None,
    )
    # a quadruple that fails the hole test or the fit may be stains or dirt bands that
    # passed for markers: the next pass looks again rather than giving the page up
    search_errors: list[MarkerNotFoundError] = []
    fit_errors: list[MarkerNotFoundError] = []
    loose_candidates: list[_Candidates] = []  # the loose passes', for the three-marker fit
    found: list[NDArray[np.float64]] = []  # marker centres of the registrations yielded

    def new(registration: Registration) -> bool:
        centres = registration.marker_centers_px
        if any(np.abs(centres - seen).max() < 2.0 for seen in found):
            return False
        found.append(centres)
        return True

    for search in passes:
        if search is None:
            # a corner torn off, or a marker under a sticker, a stamp or a clip: the other
            # three still fix the card (affinely); such a card always goes to review
            try:
                registration = _register_on_three(gray, loose_candidates, factor, layout, loose, params)
            except MarkerNotFoundError:
                continue
            if new(registration):
                yield registration
            continue
        shape, ink_share, flatten, window_share = search
        candidates = _corner_candidates(
            small, layout, shape, ink_share=ink_share, flatten=flatten, window_share=window_share
        )
        if shape is loose:
            loose_candidates.append(candidates)
        try:
            rough = to_page_px(_find_marker_quad(candidates, layout, shape), factor)
        except MarkerNotFoundError as err:
            # the dark pass keeps only the blackest squares: its own failure ("found 0
            # of the 4") tells the operator less than the passes' before it
            if ink_share is None or ink_share >= 0.5 or not search_errors:
                search_errors.append(_kept(err))
            continue
        try:
            side_px_rough = _mean_side(rough) / (
                layout.markers.centers()[1, 0] - layout.markers.centers()[0, 0]
            )
            ordered, rotation = _orient(gray, rough, layout, side_px_rough, params)
            registration = _fit(gray, ordered, rotation, layout, params)
        except _MirroredPage as err:
            if mirrored_input:
                fit_errors.append(_kept(err))
                continue
            # no scanner mirrors a sheet, but a converter or a viewer's export can: the
            # flipped image is registered and checked like any other
            flipped = np.ascontiguousarray(cv2.flip(gray, 1))
            try:
                for registration in marker_registrations(flipped, layout, params, mirrored_input=True):
                    unmirrored = _unmirror(registration, gray.shape[1])
                    if new(unmirrored):
                        yield unmirrored
            except MarkerNotFoundError as flipped_err:
                fit_errors.append(_kept(flipped_err))
            continue
        except MarkerNotFoundError as err:
            fit_errors.append(_kept(err))
            continue
        if new(registration):
            yield registration
    if found:
        return
    if fit_errors:  # four markers were found: say what was wrong with them
        raise _fresh(fit_errors[0])
    # say "blank" when there is next to no ink at all: the operator's fix differs
    step = max(1, min(gray.shape) // 400)
    sample = gray[::step, ::step]  # subsampled, not averaged: a noisy photo is not blank
    paper = float(np.percentile(sample, 90))
    ink_area = float(np.mean(sample < paper - params.min_paper_contrast_u8))
    if ink_area < 0.001 and paper >= 150:  # a uniform dark picture is not an empty sheet
        raise PageNotFoundError(
            f"blank page: {100 * ink_area:.3f} % of the page is darker than paper by "
            f"{params.min_paper_contrast_u8} grey levels; check the scanner feed or remove the "
            "empty sheet"
        )
    raise _fresh(search_errors[-1])


# -- three markers ----------------------------------------------------------------------

#: most a right angle between the three markers' sides may be off (cosine: ~3 degrees)
MAX_THREE_MARKER_COSINE = 0.05
#: least share of the scan's short side the markers' short side spans (a card fills
#: most of its scan; at 0.52 three filled bubbles passed the other tests on a test card)
MIN_THREE_MARKER_SPAN = 0.6


def _register_on_three(
    gray: NDArray[np.uint8],
    searches: list[_Candidates],
    factor: int,
    layout: CardLayout,
    shape: DetectParams,
    params: DetectParams,
) -> Registration:
    """Register on three markers forming the card's right angle; the fourth is inferred.

    The three must make a right angle with the sides' proportions and the markers'
    size; the hole is on one of them (that one is the top-left) or on none (then the
    missing one is the top-left).  The fit is affine and must meet the usual residual;
    the reader then checks the printed outlines as for any card.  ``searches``: the
    candidates of the marker search's passes with the loose shape tests (``shape``).
    """
    errors = [MarkerNotFoundError("no marker candidates to register on three")]
    for candidates in searches:
        try:
            quad, missing_corner = _three_marker_quad(candidates, layout, shape)
            rough = to_page_px(quad, factor)
            corner = rough[(missing_corner + 2) % 4]  # the right angle, opposite the missing one
            short = min(np.linalg.norm(corner - rough[(missing_corner + k) % 4]) for k in (1, 3))
            mk = layout.markers.centers()
            px_per_mm = short / np.linalg.norm(mk[1] - mk[0])
            contrasts = _hole_contrasts(gray, rough, layout, px_per_mm)
            present = [i for i in range(4) if i != missing_corner]
            holes = [i for i in present if contrasts[i] > params.min_hole_contrast]
            if len(holes) > 1:
                raise MarkerNotFoundError(f"three markers: a hole on {len(holes)} of them")
            top_left = holes[0] if holes else missing_corner
            ordered, rotation = _ordered_from(rough, top_left, layout, params)
            return _fit(gray, ordered, rotation, layout, params, missing=(missing_corner - top_left) % 4)
        except MarkerNotFoundError as err:
            errors.append(_kept(err))
    raise _fresh(errors[-1])


def _three_marker_quad(
    candidates: _Candidates, layout: CardLayout, params: DetectParams
) -> tuple[NDArray[np.float64], int]:
    """(4, 2) clockwise marker centres (work px), one inferred, and the inferred one's corner."""
    c, s, in_corner = candidates.centers, candidates.sides, candidates.corners
    by_size = np.argsort(-s)
    per_corner = [[int(i) for i in by_size if in_corner[i] == k][:3] for k in range(4)]
    mk = layout.markers.centers()
    want_short = float(np.linalg.norm(mk[1] - mk[0]))
    want_ratio = float(np.linalg.norm(mk[2] - mk[1])) / want_short
    best_cost, best_quad, best_missing = np.inf, None, -1
    for missing in range(4):
        a, b, d = (missing + 1) % 4, (missing + 2) % 4, (missing + 3) % 4  # b: the right angle
        for ia, ib, id_ in itertools.product(per_corner[a], per_corner[b], per_corner[d]):
            u, v = c[ia] - c[ib], c[id_] - c[ib]
            lu, lv = float(np.hypot(*u)), float(np.hypot(*v))
            if min(lu, lv) <= 0:
                continue
            cosine = abs(float(u @ v)) / (lu * lv)
            short, long_ = min(lu, lv), max(lu, lv)
            ratio_err = abs(long_ / short / want_ratio - 1)
            trio = s[[ia, ib, id_]]
            spread = trio.max() / max(trio.min(), 1e-9)
            scale_err = abs(trio.mean() / (short / want_short * layout.markers.side_mm) - 1)
            if (
                cosine > MAX_THREE_MARKER_COSINE
                or ratio_err > params.max_side_ratio_error
                or spread > params.max_marker_size_spread
                or scale_err > params.max_marker_scale_error
            ):
                continue
            if short < MIN_THREE_MARKER_SPAN * min(candidates.work_shape):
                continue  # three filled bubbles can form a small right angle too
            inferred = c[ia] + c[id_] - c[ib]
            # a square where the fourth should be: all four are there (say, the hole is
            # covered) and any three would "register" the card, turned or not
            there = c[in_corner == missing]
            if len(there) and float(np.min(np.hypot(*(there - inferred).T))) < 2 * trio.max():
                continue
            cost = ratio_err + cosine + 0.2 * scale_err
            if cost < best_cost:
                quad = np.empty((4, 2))
                quad[a], quad[b], quad[d] = c[ia], c[ib], c[id_]
                quad[missing] = inferred
                best_cost, best_quad, best_missing = cost, quad, missing
    if best_quad is None:
        raise MarkerNotFoundError("no three square blobs form a corner of the card's marker rectangle")
    return best_quad, best_missing


# -- candidate markers ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Candidates:
    """Square blobs of a page's four corner windows (`_corner_candidates`).

    centers : (K, 2) work pixels; sides : (K,) work pixels; corners : (K,) window index,
    clockwise in the image (top-left, top-right, bottom-right, bottom-left);
    work_shape : the work image's (height, width)
    """

    centers: NDArray[np.float64]
    sides: NDArray[np.float64]
    corners: NDArray[np.intp]
    work_shape: tuple[int, int]


def _corner_candidates(
    work: NDArray[np.uint8],
    layout: CardLayout,
    params: DetectParams,
    *,
    ink_share: float | None = None,
    flatten: bool = True,
    window_share: float = CORNER_WINDOW,
) -> _Candidates:
    """Square blobs of the four corner windows: marker candidates.

    ``ink_share`` (0..1) thresholds that share of the way from the page's darkest ink
    to its paper instead of at Otsu's level (None): on a stained or textured page
    Otsu's level lets light stains in, and a stain touching a marker merges with it.
    Under 0.5 the mask is also closed by ~1 mm: so dark a level leaves the light lines
    of a streak or of low ink across a marker open.  ``flatten`` divides each window
    by its local paper level first (uneven light); without it the windows are
    thresholded as scanned.  ``window_share``: share of each scan dimension searched
    from each corner.
    """
    # markers sit in the page's corners, so in the scan's corners whatever the turn, skew
    # or offset: four corner windows (half the pixels) hold them all, and only they are
    # flattened, thresholded and labelled
    h, w = work.shape
    ch, cw = int(h * window_share), int(w * window_share)
    # clockwise in the image (y down): top-left, top-right, bottom-right, bottom-left
    offsets = ((0, 0), (0, w - cw), (h - ch, w - cw), (h - ch, 0))
    # flatten uneven light (a shadow, a lamp gradient) before one threshold: the page over
    # its local paper level, paper estimated by a max filter wider than a marker
    paper_k = max(3, int(round(max(work.shape) / 297 * 14)) | 1)
    kernel = np.ones((paper_k, paper_k), np.uint8)
    flats = []
    for y_off, x_off in offsets:
        window = work[y_off : y_off + ch, x_off : x_off + cw]
        if flatten:
            paper = cv2.blur(cv2.dilate(window, kernel), (paper_k, paper_k))
            window = cv2.divide(window, np.maximum(paper, 1), scale=255)
        flats.append(window)
    every = np.concatenate([f.reshape(-1) for f in flats])
    if ink_share is not None:
        # the markers, bars and fills are the darkest ~1% of the page
        ink, paper_level = np.percentile(every[::4], [0.2, 50])
        level = _level_between(ink, paper_level, ink_share)
    else:
        level, _ = cv2.threshold(every, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    # the page fills at least ~60% of the scan's long side: bounds on a marker's area
    long_side_mm = max(layout.page_width_mm, layout.page_height_mm)
    min_side = layout.markers.side_mm * 0.6 * max(work.shape) / long_side_mm
    # and a marker is no bigger than on a page filling the scan (+40 % for ink spread and
    # blur): the barcode's bars blur into a larger solid square in the work image
    max_side = layout.markers.side_mm * 1.4 * max(work.shape) / long_side_mm
    closing_px = max(2, round(max(work.shape) / long_side_mm)) if ink_share is not None and ink_share < 0.5 else 0
    centers: list[tuple[float, float]] = []
    sides: list[float] = []
    corners: list[int] = []
    for corner, ((y_off, x_off), flat) in enumerate(zip(offsets, flats, strict=True)):
        found = len(centers)
        _, dark = cv2.threshold(flat, level, 255, cv2.THRESH_BINARY_INV)
        if closing_px:  # ~1 mm
            dark = cv2.morphologyEx(dark, cv2.MORPH_CLOSE, np.ones((closing_px, closing_px), np.uint8))
        _square_blobs(dark, min_side, max_side, params, x_off, y_off, centers, sides)
        corners += [corner] * (len(centers) - found)
    return _Candidates(
        centers=np.asarray(centers, dtype=np.float64).reshape(-1, 2),
        sides=np.asarray(sides, dtype=np.float64),
        corners=np.asarray(corners, dtype=np.intp),
        work_shape=(h, w),
    )


def _level_between(ink: float, paper: float, share: float) -> float:
    """The grey level ``share`` of the way from ``ink`` to ``paper``; half-way written as
    the mean, bit for bit what the half-way thresholds always were."""
    return (ink + paper) / 2 if share == 0.5 else ink + share * (paper - ink)


def _find_marker_quad(
    candidates: _Candidates, layout: CardLayout, params: DetectParams
) -> NDArray[np.float64]:
    """(4, 2) rough centres (work pixels) of the four markers, in clockwise image order."""
    if len(candidates.sides) < 4:
        raise MarkerNotFoundError(
            f"found {len(candidates.sides)} of the 4 corner markers (solid squares); is a corner cut "
            "off, or is this not a karta testowa? rescan the whole sheet"
        )
    order = np.argsort(candidates.sides)[::-1][: params.max_candidates]
    c = candidates.centers[order]
    s = candidates.sides[order]
    # one marker in each corner window: the quadruples are one candidate of each corner,
    # already in clockwise order
    in_corner = candidates.corners[order]
    combos = _one_per_corner(tuple(tuple(np.flatnonzero(in_corner == k).tolist()) for k in range(4)))
    if not len(combos):
        raise MarkerNotFoundError(
            f"square blobs found in {len(set(in_corner.tolist()))} of the 4 corners of the scan; "
            "is a corner cut off, or is this not a karta testowa? rescan the whole sheet"
        )
    pts = c[combos]  # (K, 4, 2)
    sid = s[combos]
    edges = np.linalg.norm(pts - np.roll(pts, -1, axis=1), axis=2)  # (K, 4)
    a = (edges[:, 0] + edges[:, 2]) / 2
    b = (edges[:, 1] + edges[:, 3]) / 2
    short, long_ = np.minimum(a, b), np.maximum(a, b)
    mk = layout.markers.centers()
    want_short = np.linalg.norm(mk[1] - mk[0])
    want_long = np.linalg.norm(mk[2] - mk[1])
    want_ratio = want_long / want_short
    ratio_err = np.abs(long_ / np.maximum(short, 1e-9) / want_ratio - 1)
    opposite_err = np.maximum(
        np.abs(edges[:, 0] / np.maximum(edges[:, 2], 1e-9) - 1),
        np.abs(edges[:, 1] / np.maximum(edges[:, 3], 1e-9) - 1),
    )
    diag = np.linalg.norm(pts[:, 0] - pts[:, 2], axis=1) / np.maximum(
        np.linalg.norm(pts[:, 1] - pts[:, 3], axis=1), 1e-9
    )
    diag_err = np.abs(diag - 1)
    size_spread = sid.max(axis=1) / np.maximum(sid.min(axis=1), 1e-9)
    scale_err = np.abs(sid.mean(axis=1) / (short / want_short * layout.markers.side_mm) - 1)
    ok = (
        (ratio_err < params.max_side_ratio_error)
        & (opposite_err < params.max_side_ratio_error)
        & (diag_err < params.max_side_ratio_error)
        & (size_spread < params.max_marker_size_spread)
        & (scale_err < params.max_marker_scale_error)
    )
    if not ok.any():
        raise MarkerNotFoundError(
            f"{len(c)} square blobs found but no four of them form the card's marker rectangle "
            f"({want_short:.0f} x {want_long:.0f} mm); a marker may be cut off or covered, or this "
            "is not a karta testowa: rescan the whole sheet"
        )
    cost = ratio_err + opposite_err + diag_err + 0.2 * scale_err - 0.001 * short / max(candidates.work_shape)
    best = int(np.argmin(np.where(ok, cost, np.inf)))
    return pts[best]


@functools.lru_cache(maxsize=256)
def _one_per_corner(candidates: tuple[tuple[int, ...], ...]) -> NDArray[np.intp]:
    """(K, 4) every choice of one candidate index from each corner's tuple."""
    combos = np.array(list(itertools.product(*candidates)), dtype=np.intp).reshape(-1, 4)
    combos.flags.writeable = False
    return combos


def _square_blobs(
    dark: NDArray[np.uint8],
    min_side: float,
    max_side: float,
    params: DetectParams,
    x_off: int,
    y_off: int,
    centers: list[tuple[float, float]],
    sides: list[float],
) -> None:
    """Append the centre and side of every solid square blob of ``dark`` (marker candidates)."""
    _, labels, stats, _ = _components(dark)
    bw, bh, area = stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT], stats[:, cv2.CC_STAT_AREA]
    # cheap vectorised pre-filter; a square turned by 15 degrees still fills 62% of its
    # bounding box (minus the hole), so these bounds only drop what cannot be a marker
    loose = (
        (area >= max(12.0, 0.6 * min_side**2))
        & (np.minimum(bw, bh) >= 0.8 * min_side)
        & (np.maximum(bw, bh) <= 1.6 * np.minimum(bw, bh))
        & (area >= 0.45 * bw * bh)
        & (np.maximum(bw, bh) < max(dark.shape) / 3)
        & (area <= max_side**2)
    )
    loose[0] = False  # background label
    # markers are the largest solid squares on the card (36 mm² against a bubble's 12):
    # only the biggest few candidates need the (per-blob, Python-level) shape test
    found = 0
    for label in np.flatnonzero(loose)[np.argsort(-area[loose])][: params.max_candidates]:
        x, y, cw, ch = stats[label, :4]
        blob = cv2.compare(labels[y : y + ch, x : x + cw], float(label), cv2.CMP_EQ)
        contours, _ = cv2.findContours(blob, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        contour = contours[0] if len(contours) == 1 else max(contours, key=cv2.contourArea)
        filled = cv2.contourArea(contour)  # includes the orientation hole
        (cx, cy), (rw, rh), _ = cv2.minAreaRect(contour)
        if min(rw, rh) <= 0 or max(rw, rh) / min(rw, rh) > params.max_marker_aspect:
            continue
        if filled / (rw * rh) < params.min_marker_solidity:
            continue
        centers.append((cx + x + x_off, cy + y + y_off))
        sides.append(float(np.sqrt(filled)))
        found += 1
        if found == params.max_squares_per_corner:
            return


def _components(binary: NDArray[np.uint8]) -> tuple:
    """``cv2.connectedComponentsWithStats`` (8-connected), with 16-bit labels when they fit.

    The same labels, stats and centroids in less than half the time (0.13 against
    0.30 ms on a marker-search window): 8-connected components of ``n`` pixels
    number at most ``n / 4``.
    """
    ltype = cv2.CV_16U if binary.size < 4 * 65535 else cv2.CV_32S
    return cv2.connectedComponentsWithStats(binary, connectivity=8, ltype=ltype)


def _mean_side(quad: NDArray[np.float64]) -> float:
    """Length of the shorter pair of opposite sides of a clockwise quad."""
    edges = np.linalg.norm(quad - np.roll(quad, -1, axis=0), axis=1)
    return float(min(edges[0] + edges[2], edges[1] + edges[3]) / 2)


# -- orientation ----------------------------------------------------------------------


_E = TypeVar("_E", bound=BaseException)


def _kept(err: _E) -> _E:
    """``err`` to keep in a list while the search goes on: without its traceback, whose
    frames hold the page's images (and, through the list, make a cycle only the garbage
    collector frees: four bad PDFs took a worker from 3.4 to 13.4 GB)."""
    err.__traceback__ = err.__context__ = err.__cause__ = None
    return err


def _fresh(err: _E) -> _E:
    """A new exception like the kept ``err``, to raise: raising a kept one gives it a
    traceback through the frame whose list holds it (a cycle again)."""
    return type(err)(*err.args)


class _MirroredPage(MarkerNotFoundError):
    """The marker rectangle with its hole is the card's, mirrored (`register_page` flips)."""


def _unmirror(registration: Registration, width: int) -> Registration:
    """A registration found on the horizontally flipped image, for the image as it is."""
    flip = np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    homography = flip @ registration.homography
    centres = registration.marker_centers_px.copy()
    centres[:, 0] = width - 1.0 - centres[:, 0]
    return replace(
        registration, homography=homography / homography[2, 2], marker_centers_px=centres, mirrored=True
    )


def _orient(
    gray: NDArray[np.uint8],
    quad: NDArray[np.float64],
    layout: CardLayout,
    px_per_mm: float,
    params: DetectParams,
) -> tuple[NDArray[np.float64], int]:
    """Put the clockwise quad in layout order (TL, TR, BR, BL) using the hole; the turn in degrees."""
    contrasts = _hole_contrasts(gray, quad, layout, px_per_mm)
    holes = [i for i, c in enumerate(contrasts) if c > params.min_hole_contrast]
    # a halftoned or faxed page greys the middle of every solid marker (measured: 0.43-0.51
    # beside the hole's 0.99): a hole that stands out that far from all the others is
    # still the one hole
    best = int(np.argmax(contrasts))
    others = max(c for i, c in enumerate(contrasts) if i != best)
    if len(holes) > 1 and contrasts[best] - others >= MIN_HOLE_LEAD:
        holes = [best]
    if len(holes) != 1:
        found = ", ".join(f"{c:.2f}" for c in contrasts)
        raise MarkerNotFoundError(
            f"orientation unknown: the top-left marker's white hole was found on {len(holes)} of 4 "
            f"markers (hole contrast {found}; need exactly one > {params.min_hole_contrast}, or one "
            f"ahead of all others by {MIN_HOLE_LEAD}); the marker may be dirty or covered: check "
            "the sheet and rescan"
        )
    return _ordered_from(quad, holes[0], layout, params)


#: how far the hole's contrast must lead every other marker's when more than one passes
#: `DetectParams.min_hole_contrast` (an open hole reads ~1, a solid marker ~0)
MIN_HOLE_LEAD = 0.4


def _hole_contrasts(
    gray: NDArray[np.uint8], quad: NDArray[np.float64], layout: CardLayout, px_per_mm: float
) -> list[float]:
    """Per marker centre of ``quad``: how much lighter its centre is than its ring of ink."""
    m = layout.markers
    hole_r = m.hole_side_mm / 2 * 0.5 * px_per_mm
    ring_r = (m.hole_side_mm / 2 + m.side_mm / 2) / 2 * px_per_mm
    # per marker: its centre (the hole), eight patches on the ring of ink around it, one
    # patch of the paper outside it; patch means read off one integral image per marker
    offsets = np.array(
        [(0.0, 0.0)]
        + [(dx * ring_r, dy * ring_r) for dx, dy in _RING_DIRECTIONS]
        + [((m.side_mm / 2 + m.quiet_zone_mm / 2) * px_per_mm, 0.0)]
    )
    radii = np.array([hole_r] + [hole_r * 0.6] * len(_RING_DIRECTIONS) + [hole_r])
    means = _patch_means(gray, quad[:, None, :] + offsets[None], radii)  # (4, 10)
    ring = median_rows(means[:, 1:-1])
    return ((means[:, 0] - ring) / np.maximum(means[:, -1] - ring, 1.0)).tolist()


def _ordered_from(
    quad: NDArray[np.float64], hole: int, layout: CardLayout, params: DetectParams
) -> tuple[NDArray[np.float64], int]:
    """The clockwise quad rolled to start at marker ``hole`` (layout order), and the turn."""
    ordered = np.roll(quad, -hole, axis=0)
    first_edge = np.linalg.norm(ordered[1] - ordered[0])
    second_edge = np.linalg.norm(ordered[2] - ordered[1])
    mk = layout.markers.centers()
    want = np.linalg.norm(mk[1] - mk[0]) / np.linalg.norm(mk[2] - mk[1])
    if abs(first_edge / second_edge / want - 1) > params.max_side_ratio_error:
        if abs(second_edge / first_edge / want - 1) <= params.max_side_ratio_error:
            # clockwise from the hole comes the long side: the image is the card mirrored
            raise _MirroredPage(
                "the image shows the card mirrored (left and right swapped): check the "
                "scanner's or the converter's image settings"
            )
        raise MarkerNotFoundError(
            f"marker rectangle has the wrong proportions: top edge/side edge = "
            f"{first_edge / second_edge:.2f}, expected {want:.2f}; the scan's x and y resolutions "
            "differ, or this is another form"
        )
    dx, dy = ordered[1] - ordered[0]
    rotation = int(round(np.degrees(np.arctan2(dy, dx)) / 90.0)) % 4 * 90
    return ordered, rotation


#: where the ring patches of the orientation test sit around a marker's centre
_RING_DIRECTIONS = ((1, 0), (-1, 0), (0, 1), (0, -1), (0.7, 0.7), (-0.7, -0.7), (0.7, -0.7), (-0.7, 0.7))


def _patch_means(
    gray: NDArray[np.uint8], centres: NDArray[np.float64], radii: NDArray[np.float64]
) -> NDArray[np.float64]:
    """(M, P) mean grey level of the squares of half-side ``radii[p]`` around ``centres[m, p]``.

    Squares are clipped to the image (one off it keeps its edge row or column, so none
    is empty).  One integral image per group ``m`` (a marker's neighbourhood) answers
    all its squares: ~20x cheaper than a ``cv2.mean`` call per square.
    """
    h, w = gray.shape
    r = np.maximum(1.0, radii)
    x, y = centres[..., 0], centres[..., 1]
    x0 = np.clip(np.round(x - r), 0, w - 1).astype(np.intp)
    x1 = np.clip(np.round(x + r) + 1, 1, w).astype(np.intp)
    y0 = np.clip(np.round(y - r), 0, h - 1).astype(np.intp)
    y1 = np.clip(np.round(y + r) + 1, 1, h).astype(np.intp)
    means = np.empty(centres.shape[:-1])
    for k in range(centres.shape[0]):
        wx0, wy0 = x0[k].min(), y0[k].min()
        integral = cv2.integral(gray[wy0 : y1[k].max(), wx0 : x1[k].max()], sdepth=cv2.CV_32S)
        a, b, c, d = x0[k] - wx0, x1[k] - wx0, y0[k] - wy0, y1[k] - wy0
        sums = integral[d, b] - integral[c, b] - integral[d, a] + integral[c, a]
        means[k] = sums / ((b - a) * (d - c))
    return means


# -- precise fit ----------------------------------------------------------------------


def _fit(
    gray: NDArray[np.uint8],
    rough: NDArray[np.float64],
    rotation: int,
    layout: CardLayout,
    params: DetectParams,
    missing: int = -1,
) -> Registration:
    """Refine each marker at full resolution and fit the homography over corners + centres.

    When the markers do not fit the card's geometry, they are refined once more with
    their masks opened by ~0.4 mm: speckle of a dirty roller or a photocopy touching a
    marker joins its blob and drags its corners and centre off (measured: residual
    0.87 mm on a card whose markers are intact), and the opening cuts such bridges and
    specks off while a 6 mm square keeps its shape.  Then once more with the masks closed
    by ~0.6 mm: a scanner's streak or a low-ink line (a light line across the page)
    cuts a marker in two, and the fit took the larger piece for the marker (measured:
    residuals 0.7-1.1 mm on cards whose markers are whole but for such lines).  Last,
    with only the darkest quarter from ink to paper kept, opened and closed: a dirt band
    or a bad copy's grey speckle that touches a marker (measured: 1.16 -> 0.19 mm); or
    opened by 0.8 mm, for a marker inside a dense band of black specks (1.40 -> 0.14 mm;
    the orientation hole's 1.8 mm ring survives it).
    A first fit that passes but is not good (over `GOOD_RESIDUAL_MM`) is redone the
    same ways, and the best fit is kept.
    """
    cleanings: tuple[dict[str, float], ...] = (
        {},
        {"opening_mm": 0.4},
        {"closing_mm": 0.6},
        {"ink_share": 0.25, "opening_mm": 0.4, "closing_mm": 0.6},
        {"ink_share": 0.25, "opening_mm": 0.8},
    )
    fits: list[Registration] = []
    errors: list[MarkerNotFoundError] = []
    for cleaning in cleanings:
        try:
            fit = _fit_markers(gray, rough, rotation, layout, params, missing=missing, **cleaning)
        except MarkerNotFoundError as err:
            errors.append(_kept(err))
            continue
        if not cleaning and fit.residual_mm <= GOOD_RESIDUAL_MM:
            return fit
        # a fit that passes but is not good may be dragged too (measured: a dirt band
        # touching two markers, 0.50 mm, boxes 0.6 mm off): the best of all is kept
        fits.append(fit)
    if not fits:
        raise _fresh(errors[0])
    return min(fits, key=lambda fit: fit.residual_mm)


#: a marker fit at most this far off is not redone (clean scans: 0.04 median, 0.09 max
#: over 140 damaged synthetic cards; intact markers on Augraphy scans: 0.04-0.06)
GOOD_RESIDUAL_MM = 0.2


def _fit_markers(
    gray: NDArray[np.uint8],
    rough: NDArray[np.float64],
    rotation: int,
    layout: CardLayout,
    params: DetectParams,
    *,
    opening_mm: float = 0.0,
    closing_mm: float = 0.0,
    ink_share: float = 0.5,
    missing: int = -1,
) -> Registration:
    """`_fit` with the marker masks opened by a square of ``opening_mm``, then closed by one
    of ``closing_mm`` (0: not), thresholded ``ink_share`` of the way from ink to paper.

    ``missing`` (layout index, -1: none) is a marker that is not on the image: the other
    three give an affine fit (three clusters of points pin a plane's affine map, not a
    perspective one; a flat scan is affine to well under the fit's tolerance).
    """
    m = layout.markers
    mk = m.centers()
    corners_mm = m.corners()
    px_per_mm = float(np.linalg.norm(rough[1] - rough[0]) / np.linalg.norm(mk[1] - mk[0]))
    h, w = gray.shape
    image_pts = []
    inks, papers = [], []
    rough_h, _ = cv2.findHomography(mk, rough, 0)
    predicted_corners = project_points(rough_h, corners_mm)  # (4 markers, 4 corners, 2)
    half = (m.side_mm / 2 + m.quiet_zone_mm * 0.8) * px_per_mm
    opening_px = max(2, round(opening_mm * px_per_mm)) if opening_mm else 0
    closing_px = max(2, round(closing_mm * px_per_mm)) if closing_mm else 0
    present = [k for k in range(4) if k != missing]
    for k in present:
        cx, cy = rough[k]
        x0, y0 = max(0, math.floor(cx - half)), max(0, math.floor(cy - half))
        x1, y1 = min(w, math.ceil(cx + half) + 1), min(h, math.ceil(cy + half) + 1)
        window = gray[y0:y1, x0:x1]
        if window.size == 0 or min(window.shape) < 5:
            raise MarkerNotFoundError(f"marker {k} lies at the image edge; rescan the whole sheet")
        ink, paper = _percentiles_u8(window, (5.0, 95.0))
        inks.append(ink)
        papers.append(paper)
        level = _level_between(ink, paper, ink_share)
        # window < level as a 0/1 mask; for integer grey values that is <= ceil(level) - 1
        _, mask = cv2.threshold(window, math.ceil(level) - 1, 1, cv2.THRESH_BINARY_INV)
        if opening_px:
            mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((opening_px, opening_px), np.uint8))
        if closing_px:
            mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((closing_px, closing_px), np.uint8))
        n, labels, stats, cents = _components(mask)
        if n < 2:
            raise MarkerNotFoundError(f"marker {k} vanished at full resolution; rescan")
        local = np.array([cx - x0, cy - y0])
        dist = np.linalg.norm(cents[1:] - local, axis=1) - np.sqrt(stats[1:, cv2.CC_STAT_AREA])
        label = 1 + int(np.argmin(dist))
        blob = cv2.compare(labels, float(label), cv2.CMP_EQ)
        contours, _ = cv2.findContours(blob, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        contour = max(contours, key=cv2.contourArea)
        moments = cv2.moments(contour)
        if moments["m00"] <= 0:
            raise MarkerNotFoundError(f"marker {k} has no area at full resolution; rescan")
        centre = np.array([moments["m10"] / moments["m00"], moments["m01"] / moments["m00"]])
        # corners: the contour points farthest along each predicted corner direction
        predicted = predicted_corners[k] - np.array([x0, y0])
        pts = contour[:, 0, :].astype(np.float64)
        directions = predicted - centre
        directions /= np.maximum(np.linalg.norm(directions, axis=1, keepdims=True), 1e-9)
        along = pts[:, :1] * directions[:, 0] + pts[:, 1:] * directions[:, 1]  # (P, 4)
        # a contour traces pixel centres of the inside: move corners out by half a pixel
        corners_arr = pts[np.argmax(along, axis=0)] + 0.5 * np.sign(predicted - centre)
        image_pts.append(np.vstack([centre, corners_arr]) + np.array([x0, y0]))
    layout_pts = np.concatenate([mk[:, None, :], corners_mm], axis=1)  # (4, 5, 2) centre + corners
    src = layout_pts[present].reshape(-1, 2)
    dst = np.concatenate(image_pts)
    # the corners of a blurred square are rounded; weight centres (unbiased) more
    weights = np.tile([3.0, 1, 1, 1, 1], len(present))
    if missing < 0:
        homography = _weighted_homography(src, dst, weights)
    else:
        homography = _weighted_affine(src, dst, weights)
    fitted = project_points(homography, src)
    residual_px = float(np.sqrt(np.average(np.sum((fitted - dst) ** 2, axis=1), weights=weights)))
    scale = float(np.sqrt(abs(np.linalg.det(homography[:2, :2]))))
    residual_mm = residual_px / scale
    if residual_mm > params.max_residual_mm:
        raise MarkerNotFoundError(
            f"markers do not fit the card's geometry: residual {residual_mm:.2f} mm "
            f"(need <= {params.max_residual_mm}); the sheet may be folded or another form"
        )
    centres = np.array([p[0] for p in image_pts])
    if missing >= 0:  # where the missing marker's centre is, for the record and overlays
        centres = np.insert(centres, missing, project_points(homography, mk[missing : missing + 1]), axis=0)
    return Registration(
        homography=homography,
        marker_centers_px=centres,
        rotation_deg=rotation,
        px_per_mm=scale,
        residual_mm=residual_mm,
        ink_u8=median(np.array(inks)),
        paper_u8=median(np.array(papers)),
        missing_marker=missing,
    )


def _percentiles_u8(values: NDArray[np.uint8], percents: tuple[float, float]) -> tuple[float, float]:
    """``np.percentile(values, percents)`` (linear method, bit for bit) from a 256-bin histogram.

    A histogram and its cumulative sum cost ~30 µs on a marker's window, a sort-based
    percentile ~150 µs (eight of them per page).
    """
    n = values.size
    cum = np.cumsum(cv2.calcHist([values], [0], None, [256], [0, 256]).ravel().astype(np.int64))
    out = []
    for percent in percents:
        q = percent / 100
        virtual = (n - 1) * q  # numpy's virtual index for the linear method
        lo = int(np.floor(virtual))
        t = virtual - lo
        lo, hi = min(max(lo, 0), n - 1), min(max(lo + 1, 0), n - 1)
        a, b = np.searchsorted(cum, [lo, hi], side="right").tolist()  # the sorted values at lo, hi
        diff = b - a
        out.append(float(b - diff * (1 - t)) if t >= 0.5 else float(a + diff * t))
    return out[0], out[1]


def _weighted_affine(
    src: NDArray[np.float64], dst: NDArray[np.float64], weights: NDArray[np.float64]
) -> NDArray[np.float64]:
    """(3, 3) weighted least-squares affine map src → dst, as a homography."""
    design = np.hstack([src, np.ones((len(src), 1))]) * np.sqrt(weights)[:, None]
    solution, *_ = np.linalg.lstsq(design, dst * np.sqrt(weights)[:, None], rcond=None)
    return np.vstack([solution.T, [0.0, 0.0, 1.0]])


def _weighted_homography(
    src: NDArray[np.float64], dst: NDArray[np.float64], weights: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Weighted least-squares DLT homography src → dst (normalised coordinates).

    Sized for a card's 20 marker points: each normalisation is a scale and a shift,
    inverted by hand, and the SVD skips the left vectors (~70 against 190 µs).
    """
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - src_mean, dst - dst_mean
    src_scale = np.sqrt(2) / np.mean(np.sqrt((s * s).sum(axis=1)))
    dst_scale = np.sqrt(2) / np.mean(np.sqrt((d * d).sum(axis=1)))
    s *= src_scale
    d *= dst_scale
    n = len(s)
    a = np.zeros((2 * n, 9))
    a[0::2, 0:2] = s
    a[0::2, 2] = 1
    a[0::2, 6:8] = -d[:, :1] * s
    a[0::2, 8] = -d[:, 0]
    a[1::2, 3:5] = s
    a[1::2, 5] = 1
    a[1::2, 6:8] = -d[:, 1:2] * s
    a[1::2, 8] = -d[:, 1]
    a *= np.repeat(np.sqrt(weights), 2)[:, None]
    hn = np.linalg.svd(a, full_matrices=False)[2][-1].reshape(3, 3)
    (sx, sy), (dx, dy), back = -src_scale * src_mean, dst_mean, 1 / dst_scale
    to_src = np.array([[src_scale, 0.0, sx], [0.0, src_scale, sy], [0.0, 0.0, 1.0]])
    from_dst = np.array([[back, 0.0, dx], [0.0, back, dy], [0.0, 0.0, 1.0]])
    homography = from_dst @ hn @ to_src
    return homography / homography[2, 2]
