"""Bubble geometry and vectorised sampling of every box on a registered card.

Coordinate convention (used throughout the package): layout points are millimetres
``(x, y)``, x to the right, y down, origin at the printed page's top-left corner;
image points are pixels ``(x, y)`` where pixel ``[row, col]`` has its centre at
``(col, row)``.  Arrays of points have shape ``(..., 2)``.

Each box is judged on its inner area (inside the outline, shrunk by ``read_inset``)::

    +---------------------+   outline, width bubble.width_mm
    |  . . . . . . . . .  |
    |  . . . .  B . . . . |   a fixed grid of samples_x × samples_y points
    |  . . . . . . . . .  |   over the inner area
    +---------------------+

All sample points of all boxes (~1,100 boxes × 108 points) are mapped through the
page homography and read with a single ``cv2.remap``.  Values are turned into
*darkness*: 0 at the local paper white, 1 at the marker ink, so features do not
depend on the scanner's brightness, paper tint or the pencil's shade of grey.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from enum import IntEnum

import cv2
import numpy as np
from numpy.typing import NDArray

from omr.detect import project_points, to_work_px
from omr.layout import CardLayout
from omr.stats import median

__all__ = [
    "FEATURE_NAMES",
    "Feature",
    "ProbeOrder",
    "SamplingGrid",
    "box_features",
    "build_sampling_grid",
    "BoxSamples",
    "outline_evidence",
    "paper_levels",
    "remove_print",
    "sample_boxes",
    "surround_darkness",
    "outline_at_shifts",
    "outline_points_mm",
]

class Feature(IntEnum):
    """The columns of the feature matrix returned by `box_features` (``features[:, Feature.FILL]``)."""

    FILL = 0
    INK = 1
    ASYMMETRY = 2
    CORE = 3
    STROKE = 4
    PEAK = 5
    CROSS = 6
    SPREAD = 7


#: the column names, in order (the ``--fills`` CSV header, the store's fill matrix)
FEATURE_NAMES = tuple(f.name.lower() for f in Feature)
#: darkness from which a sample counts as "clearly dark" (half-way paper → ink)
CLEARLY_DARK = 0.5
#: how much darker than the box's own base a sample must be to be part of a stroke
STROKE_CONTRAST = 0.18
#: a printed-letter template needs this many boxes sharing the glyph
MIN_TEMPLATE_BOXES = 5
#: a template darker than median * ratio + excess (mean darkness) is marks, not print
MAX_TEMPLATE_RATIO = 2.0
MAX_TEMPLATE_EXCESS = 0.05


@dataclass(frozen=True, slots=True)
class SamplingGrid:
    """Where to sample each box, in layout millimetres.

    points_mm : (N, S, 2) float64, S sample points inside each of the N boxes
    centers_mm : (N, 2) float64, box centres (``layout.box_centers()`` order)
    halves : (4, S) bool, which samples lie in the left, right, top, bottom half
    core : (S,) bool, samples in the central half (by area) of the inner box
    corners, side_middles : (4, S) bool, samples in the four corners of the inner box
        and at the middle of its four sides: where a cross's arms run and where not
    moments : (S, 5) float32, per sample its offset from the box centre in mm (x, y) and
        x², y², xy: what `box_features` takes the strokes' spatial spread from
    glyph_groups : (N,) int, boxes printed with the same letter share a group
        (answer option k; code digit row d; a version label joins the answer
        option with the same letter); -1 = no template
    template_batches : the glyph groups large enough for a print template
        (``MIN_TEMPLATE_BOXES``), as index arrays (G, n) of the groups of one size n,
        so one sort learns all their templates
    template_rows : (N,) int, each box's group as a row of the templates stacked in
        ``template_batches`` order; the number of groups for a box with no template
    probes_mm : (N, S + 12 + 14, 2) float64, per box its S inner samples, then 12 on its
        printed outline (`outline_evidence`), then 14 in the paper gaps above and below
        it (`surround_darkness`): one projection and one remap read them all, so each
        part of the page is fetched from memory once
    header_above : (N,) bool, boxes with printed headers above them (a block's first
        row, the code grid's first digit row, the version row): only the gap below
        them counts in `surround_darkness`
    probe_orders : the probes in the order the page's rows hold them, for a page whose
        rows run along the layout's x (upright or upside down) and along its y
        (scanned sideways): `ProbeOrder`, used by `sample_boxes`
    """

    points_mm: NDArray[np.float64]
    centers_mm: NDArray[np.float64]
    halves: NDArray[np.bool_]
    core: NDArray[np.bool_]
    corners: NDArray[np.bool_]
    side_middles: NDArray[np.bool_]
    glyph_groups: NDArray[np.int64]
    template_batches: tuple[NDArray[np.intp], ...]
    template_rows: NDArray[np.intp]
    probes_mm: NDArray[np.float64]
    header_above: NDArray[np.bool_]
    probe_orders: tuple[ProbeOrder, ProbeOrder]
    moments: NDArray[np.float32] | None = None


@dataclass(frozen=True, slots=True)
class ProbeOrder:
    """``probes_mm`` sorted into bands across the page, to be read in one sweep.

    In box order a remap reads each box's ~130 probes down ~60 image rows and
    then jumps to the next box: every row is fetched from memory again for each box
    that crosses it.  Sorted into 1 mm bands across the page, then along the band,
    the probes are read row band after row band (measured at 300 DPI: 1.6 against
    2.5 ms, the same values).

    probes_mm : (N, P, 2) the probes in reading order (the shape only keeps the map
        within ``cv2.remap``'s 32767 rows)
    slots : (N * P,) where each box-order probe sits in the reading order
    """

    probes_mm: NDArray[np.float64]
    slots: NDArray[np.intp]


#: width of the bands across the page in which the probes are read (`ProbeOrder`)
PROBE_BAND_MM = 1.0


def _probe_order(probes_mm: NDArray[np.float64], along: int) -> ProbeOrder:
    """The probes in bands ``PROBE_BAND_MM`` wide that run along layout axis ``along``, each read along it."""
    flat = probes_mm.reshape(-1, 2)
    order = np.lexsort((flat[:, along], np.floor(flat[:, 1 - along] / PROBE_BAND_MM)))
    slots = np.empty_like(order)
    slots[order] = np.arange(order.size)
    return ProbeOrder(probes_mm=flat[order].reshape(probes_mm.shape), slots=slots)


def build_sampling_grid(layout: CardLayout, samples_x: int = 12, samples_y: int = 9) -> SamplingGrid:
    """Sample points over the inner area of every box of ``layout``.

    >>> from omr.layout import load_layout
    >>> grid = build_sampling_grid(load_layout())
    >>> grid.points_mm.shape
    (1094, 108, 2)
    """
    b = layout.bubble
    # cell centres of a samples_x × samples_y partition of the inner rectangle
    ux = (np.arange(samples_x) + 0.5) / samples_x - 0.5
    uy = (np.arange(samples_y) + 0.5) / samples_y - 0.5
    gx, gy = np.meshgrid(ux, uy)
    unit = np.stack([gx.ravel(), gy.ravel()], axis=-1)  # (S, 2) in [-0.5, 0.5]
    offsets = unit * np.array([b.inner_width_mm, b.inner_height_mm])
    centers = layout.box_centers()
    halves = np.stack([unit[:, 0] < 0, unit[:, 0] > 0, unit[:, 1] < 0, unit[:, 1] > 0])
    core = (np.abs(unit[:, 0]) < 0.354) & (np.abs(unit[:, 1]) < 0.354)
    u, v = unit[:, 0], unit[:, 1]
    corners = np.stack([(u * a > 0.15) & (v * b > 0.15) for a, b in ((-1, -1), (1, -1), (1, 1), (-1, 1))])
    side_middles = np.stack(
        [
            (np.abs(u) < 0.12) & (v < -0.25),
            (np.abs(u) < 0.12) & (v > 0.25),
            (np.abs(v) < 0.12) & (u < -0.25),
            (np.abs(v) < 0.12) & (u > 0.25),
        ]
    )
    n_options = len(layout.options)
    g = layout.code_grid
    answer_groups = np.tile(np.arange(n_options), layout.questions)
    code_groups = n_options + np.tile(np.arange(g.rows), g.columns)
    version_groups = np.array([layout.options.find(label) for label in layout.version.labels])
    part_groups = np.full(layout.part_count if layout.parts is not None else 0, -1)  # no template
    glyph_groups = np.concatenate([answer_groups, code_groups, version_groups, part_groups]).astype(np.int64)
    template_batches, template_rows = _template_groups(glyph_groups)
    points_mm = centers[:, None, :] + offsets[None, :, :]
    surround_mm, header_above = _surround_points_mm(layout)
    probes_mm = np.concatenate([points_mm, outline_points_mm(layout), surround_mm], axis=1)
    return SamplingGrid(
        points_mm=points_mm,
        centers_mm=centers,
        halves=halves,
        core=core,
        corners=corners,
        side_middles=side_middles,
        glyph_groups=glyph_groups,
        template_batches=template_batches,
        template_rows=template_rows,
        probes_mm=probes_mm,
        header_above=header_above,
        probe_orders=(_probe_order(probes_mm, along=0), _probe_order(probes_mm, along=1)),
        moments=np.stack(
            [offsets[:, 0], offsets[:, 1], offsets[:, 0] ** 2, offsets[:, 1] ** 2, offsets[:, 0] * offsets[:, 1]],
            axis=1,
        ).astype(np.float32),
    )


def _template_groups(
    glyph_groups: NDArray[np.int64],
) -> tuple[tuple[NDArray[np.intp], ...], NDArray[np.intp]]:
    """The glyph groups that get a print template, batched by size, and each box's row."""
    labels, counts = np.unique(glyph_groups[glyph_groups >= 0], return_counts=True)
    members = [np.flatnonzero(glyph_groups == g) for g in labels[counts >= MIN_TEMPLATE_BOXES]]
    sizes = sorted({m.size for m in members})
    batches = tuple(np.stack([m for m in members if m.size == size]) for size in sizes)
    rows = np.full(glyph_groups.shape, sum(len(b) for b in batches), dtype=np.intp)
    for row, m in enumerate(m for batch in batches for m in batch):
        rows[m] = row
    return batches, rows


def remove_print(darkness: NDArray[np.float32], grid: SamplingGrid) -> NDArray[np.float32]:
    """(N, S) darkness with the printed letter (and any systematic rim) taken out.

    Every box printed with the same glyph shares a template: the per-sample lower
    quartile over the group's boxes (most of them are blank, so this is the print
    as scanned, blur and all).  Subtracting it leaves only what the candidate drew,
    which is what lets a blurred pencil cross be told from a light grey letter.
    """
    # per batch of same-sized groups: (G, S, n) samples x boxes, the order statistic
    # along the boxes, by a sort along the last, contiguous axis (NumPy's vectorised
    # float32 sort: 0.55 against 0.71 ms for np.partition, which finds the same value)
    templates = []
    for batch in grid.template_batches:
        k = batch.shape[1] // 4
        templates.append(np.sort(darkness[batch].transpose(0, 2, 1), axis=2)[..., k])
    if not templates:
        return np.clip(darkness, 0.0, 1.0)
    stacked = np.concatenate(templates + [np.zeros((1, darkness.shape[1]), np.float32)])
    # A candidate who marks the same letter on most questions (guessing "all C") would
    # turn that glyph's template into a mark and erase the marks: a template much
    # darker than the other glyphs' is not print, so that group keeps its raw darkness.
    weights = stacked[:-1].mean(axis=1)
    limit = median(weights) * MAX_TEMPLATE_RATIO + MAX_TEMPLATE_EXCESS
    stacked[:-1][weights > limit] = 0.0
    residual = darkness - stacked[grid.template_rows]
    return np.clip(residual, 0.0, 1.0, out=residual)


def paper_levels(
    work: NDArray[np.uint8],
    work_factor: int,
    homography: NDArray[np.float64],
    centers_mm: NDArray[np.float64],
    px_per_mm: float,
    window_mm: float = 7.0,
) -> NDArray[np.float32]:
    """(N,) local paper white around each box centre, read from a downscaled page.

    The page is max-filtered over ``window_mm`` (longer than a box, so a box's own
    ink, its outline and letter, and nearby marks vanish) and then smoothed, which
    follows uneven illumination and paper tint but not the ink.
    """
    k = max(3, int(round(window_mm * px_per_mm / work_factor)) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    pts = to_work_px(project_points(homography, centers_mm), work_factor)
    # only the part of the page around the boxes is filtered (~3/4 of the page, ~85 us
    # less at 300 DPI): a value read there depends on pixels within k (dilate k/2, then blur k/2)
    # of it, so a crop wider by k + 2 (bilinear reads) gives the same values; where the
    # crop meets the page's edge, both see the same edge
    h, w = work.shape
    xs, ys = pts[:, 0], pts[:, 1]  # (min along axis 0 of an (N, 2) array is ~10x slower)
    left, top, right, bottom = float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())
    x0, y0 = max(0, math.floor(left) - k - 2), max(0, math.floor(top) - k - 2)
    x1, y1 = min(w, math.ceil(right) + k + 3), min(h, math.ceil(bottom) + k + 3)
    if x1 - x0 < 2 or y1 - y0 < 2:  # boxes off the page: nothing to crop to
        x0, y0, x1, y1 = 0, 0, w, h
    crop = work[y0:y1, x0:x1]
    background = cv2.blur(cv2.dilate(crop, kernel), (k, k))
    # float32 minus a whole number is exact: the same fractions as an uncropped map
    map_xy = (pts.astype(np.float32) - np.array([x0, y0], np.float32)).reshape(-1, 1, 2)
    values = cv2.remap(background, map_xy, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return values.reshape(-1).astype(np.float32)


@dataclass(frozen=True, slots=True)
class BoxSamples:
    """What one remap read of every box (`sample_boxes`).

    darkness : (N, S) darkness of the inner samples (0 = local paper, 1 = marker ink)
    outline : (N,) how dark each box's printed outline is (`outline_evidence`)
    surround : (N,) how dark the paper gaps around each box are (`surround_darkness`)
    """

    darkness: NDArray[np.float32]
    outline: NDArray[np.float32]
    surround: NDArray[np.float32]


def sample_boxes(
    gray: NDArray[np.uint8],
    homography: NDArray[np.float64],
    grid: SamplingGrid,
    paper: NDArray[np.float32],
    ink_u8: float,
) -> BoxSamples:
    """Darkness of every box's inner samples, its outline and the gaps around it.

    Parameters
    ----------
    gray : (H, W) uint8 ndarray, the page
    homography : (3, 3) layout mm -> image px
    grid : SamplingGrid
    paper : (N,) float32 local paper level per box (`paper_levels`)
    ink_u8 : grey level of the printed markers' ink on this page

    All ``grid.probes_mm`` in one projection and one ``cv2.remap``, in the order of
    the page's rows (`ProbeOrder`): the page is fetched from memory once (three
    remaps over the same rows cost ~1 ms more).
    """
    darkness = _darkness_at(gray, homography, _row_order(grid, homography), paper, ink_u8)
    inner = grid.points_mm.shape[1]
    return BoxSamples(
        darkness=darkness[:, :inner],
        outline=outline_evidence(darkness[:, inner : inner + _OUTLINE_PROBES]),
        surround=surround_darkness(darkness[:, inner + _OUTLINE_PROBES :], grid.header_above),
    )


def _row_order(grid: SamplingGrid, homography: NDArray[np.float64]) -> ProbeOrder:
    """The probe order whose bands run along the image's rows under ``homography``."""
    centre = np.array([grid.centers_mm[:, 0].mean(), grid.centers_mm[:, 1].mean()])  # ~3x axis=0
    origin, step_x = project_points(homography, np.array([centre, centre + (1.0, 0.0)]))
    along_x = step_x - origin  # the image direction of the layout's x axis
    return grid.probe_orders[0 if abs(along_x[0]) >= abs(along_x[1]) else 1]


def _darkness_at(
    gray: NDArray[np.uint8],
    homography: NDArray[np.float64],
    order: ProbeOrder,
    paper: NDArray[np.float32],
    ink_u8: float,
) -> NDArray[np.float32]:
    """(N, K) darkness at the probes of ``order``, box n judged against ``paper[n]``; one remap."""
    pts = project_points(homography, order.probes_mm).astype(np.float32)
    swept = cv2.remap(gray, pts, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=255)
    values = np.take(swept.reshape(-1), order.slots).reshape(swept.shape)  # ~25% under [] indexing
    return _darkness(values, paper, ink_u8)


def _darkness(values: NDArray[np.uint8], paper: NDArray[np.float32], ink_u8: float) -> NDArray[np.float32]:
    """(N, ...) grey ``values`` of N boxes as darkness: 0 at the box's ``paper[n]``, 1 at
    the markers' ink (a span of at least 20 grey levels), clipped to 0..1."""
    paper = paper.reshape(-1, *([1] * (values.ndim - 1)))
    span = np.maximum(paper - np.float32(ink_u8), np.float32(20.0))
    darkness = (paper - values.astype(np.float32)) / span
    return np.clip(darkness, 0.0, 1.0, out=darkness)


def box_features(darkness: NDArray[np.float32], grid: SamplingGrid) -> NDArray[np.float32]:
    """(N, F) features per box, columns as `FEATURE_NAMES`.

    fill : mean darkness of the inner area
    ink : share of clearly dark samples (darkness >= 0.5); a thin pen X has few
        but clearly dark pixels, an erasure residue many light ones
    asymmetry : largest difference of ``ink`` between left/right or top/bottom
        halves: high for a half-filled box, low for a fill or a cross
    core : mean darkness of the central half of the box (marks centre on the box;
        a stray line or a misregistered outline touches the rim)
    stroke : share of samples at least ``STROKE_CONTRAST`` darker than the box's own
        base (its lower quartile): lines drawn on paper (a cross, even a blurred
        pencil one) score high, an even grey residue or an even fill scores ~0

    peak : mean darkness of the box's darkest tenth: how dark what was drawn is,
        whatever its extent (a faint stroke is light, a pen or pencil line is not)
    cross : the clearly-dark share of the emptiest corner minus that of the fullest
        side middle: a cross's arms reach all four corners and miss the side middles;
        one stroke, a tick, a blot or scattered specks do not.  This shape evidence
        survives a 1-bit scan, where darkness does not.
    spread : how far the stroke samples reach, in mm: their standard deviation along
        their longest direction.  A tick or a cross runs across the box (~0.8-1 mm);
        a dark speck of dirt, as dark as a pen line, is a compact blob (~0.3-0.5 mm):
        darkness cannot tell them apart, this can.

    ``darkness`` should have the print removed (`remove_print`).
    """
    n_samples = darkness.shape[1]
    share = np.full((n_samples, 1), 1 / n_samples, np.float32)
    halves = grid.halves.T / grid.halves.sum(axis=1)
    corners = grid.corners.T / grid.corners.sum(axis=1)
    middles = grid.side_middles.T / grid.side_middles.sum(axis=1)
    core_weights = (grid.core / grid.core.sum())[:, None]
    # the means and shares as three matrix products (one pass over the samples each)
    fill, core = (darkness @ np.hstack([share, core_weights]).astype(np.float32)).T
    clearly = (darkness >= CLEARLY_DARK).astype(np.float32)
    clearly_shares = clearly @ np.hstack([share, halves, corners, middles]).astype(np.float32)
    ink, clearly_halves = clearly_shares[:, 0], clearly_shares[:, 1:5]
    corner_shares, middle_shares = clearly_shares[:, 5:9], clearly_shares[:, 9:13]
    # one sort gives both order statistics: the base (lower quartile) and the darkest tenth
    ordered = np.sort(darkness, axis=1)
    quartile = n_samples // 4
    stroke_mask = (darkness >= ordered[:, quartile : quartile + 1] + STROKE_CONTRAST).astype(np.float32)
    stroke_weights = np.hstack([share, halves, grid.moments / n_samples]).astype(np.float32)
    stroke_shares = stroke_mask @ stroke_weights
    stroke = stroke_shares[:, 0]
    # the strokes' spread: their standard deviation along their longest direction (mm)
    weight = np.maximum(stroke, 1 / n_samples)
    mx, my, mxx, myy, mxy = (stroke_shares[:, 5:10] / weight[:, None]).T
    vx, vy, cxy = mxx - mx * mx, myy - my * my, mxy - mx * my
    spread = np.sqrt(np.maximum((vx + vy) / 2 + np.sqrt(((vx - vy) / 2) ** 2 + cxy * cxy), 0.0))
    half_share = (clearly_halves + stroke_shares[:, 1:5]) / 2
    asymmetry = np.maximum(
        np.abs(half_share[:, 0] - half_share[:, 1]), np.abs(half_share[:, 2] - half_share[:, 3])
    )
    tenth = max(1, n_samples // 10)
    peak = ordered[:, -tenth:].mean(axis=1)
    # elementwise over the four columns: a min/max along an axis of 4 is ~5x slower
    c, m = corner_shares, middle_shares
    emptiest_corner = np.minimum(np.minimum(c[:, 0], c[:, 1]), np.minimum(c[:, 2], c[:, 3]))
    fullest_middle = np.maximum(np.maximum(m[:, 0], m[:, 1]), np.maximum(m[:, 2], m[:, 3]))
    cross = emptiest_corner - fullest_middle
    columns = {Feature.FILL: fill, Feature.INK: ink, Feature.ASYMMETRY: asymmetry, Feature.CORE: core,
               Feature.STROKE: stroke, Feature.PEAK: peak, Feature.CROSS: cross,
               Feature.SPREAD: spread}  # fmt: skip
    return np.stack([columns[f] for f in Feature], axis=1).astype(np.float32)


#: outline probes per box: 4 edges x 3 offsets across the line
_OUTLINE_PROBES = 12


def outline_evidence(edge_darkness: NDArray[np.float32]) -> NDArray[np.float32]:
    """(N,) how dark each box's printed outline is where the registration puts it.

    ``edge_darkness`` (N, 12) is the darkness at the middle of the box's four edges,
    each at three offsets across the line (±0.15 mm, `outline_points_mm`).  The
    darkest offset of each edge is kept, so small registration error is tolerated
    but not a wrong form or a page registered to the wrong place: on this card the
    outlines are there (evidence ~0.3–1), on anything else they are not.
    """
    # the weakest edge: a box slid sideways keeps its top and bottom lines under the
    # samples but loses a side, so an average over the edges would hide it
    # (elementwise max/min over the 3 offsets and 4 edges: a NumPy reduction over
    # such short axes costs ~10x more)
    per_edge = edge_darkness.reshape(len(edge_darkness), 4, 3)
    edges = np.maximum(np.maximum(per_edge[..., 0], per_edge[..., 1]), per_edge[..., 2])
    return np.minimum(np.minimum(edges[:, 0], edges[:, 1]), np.minimum(edges[:, 2], edges[:, 3]))


def outline_at_shifts(
    gray: NDArray[np.uint8],
    homography: NDArray[np.float64],
    outline_mm: NDArray[np.float64],
    paper: NDArray[np.float32],
    ink_u8: float,
    shifts_mm: NDArray[np.float64],
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """How well B boxes' printed outlines sit under each of S layout shifts.

    ``outline_mm`` (B, 12, 2) are the boxes' outline samples (`outline_points_mm`),
    ``paper`` (B,) their paper levels, ``shifts_mm`` (S, 2) moves in layout mm.
    Returns ``(weakest, mean)``, both (S, B): `outline_evidence` (the weakest edge) and
    the mean over the four edges, which still rises when only some edges are found
    (the coarse step of a search).  One remap for all shifts.
    """
    n_shifts, n_boxes = len(shifts_mm), len(outline_mm)
    pts_mm = (outline_mm[None, :, :, :] + shifts_mm[:, None, None, :]).reshape(-1, 2)
    pts = project_points(homography, pts_mm).astype(np.float32)
    width = 1024  # remap's maps must stay under 32,767 in each dimension
    padded = np.zeros((-(-len(pts) // width) * width, 2), np.float32)
    padded[: len(pts)] = pts
    values = cv2.remap(gray, padded.reshape(-1, width, 2), None, cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=255)  # fmt: skip
    per_box = values.reshape(-1)[: len(pts)].reshape(n_shifts, n_boxes, -1).transpose(1, 0, 2)
    edge_darkness = _darkness(per_box, paper, ink_u8).transpose(1, 0, 2).reshape(n_shifts * n_boxes, -1)
    weakest = outline_evidence(edge_darkness).reshape(n_shifts, n_boxes)
    per_edge = edge_darkness.reshape(n_shifts, n_boxes, 4, 3).max(axis=3)  # darkest offset across each line
    return weakest, per_edge.mean(axis=2)


@functools.lru_cache(maxsize=4)
def outline_points_mm(layout: CardLayout) -> NDArray[np.float64]:
    """(N, 12, 2) outline samples of every box: 4 edges x 3 offsets (built once per layout)."""
    b = layout.bubble
    hx = b.width_mm / 2 - b.outline_width_mm / 2
    hy = b.height_mm / 2 - b.outline_width_mm / 2
    across = np.array([-0.15, 0.0, 0.15])
    # (4 edges, 3 offsets, 2): left/right edges move in x, top/bottom edges in y
    offsets = np.concatenate(
        [
            np.stack([-hx + across, 0 * across], -1)[None],
            np.stack([hx + across, 0 * across], -1)[None],
            np.stack([0 * across, -hy + across], -1)[None],
            np.stack([0 * across, hy + across], -1)[None],
        ]
    ).reshape(-1, 2)
    points = layout.box_centers()[:, None, :] + offsets[None, :, :]
    points.flags.writeable = False
    return points


def surround_darkness(
    gap_darkness: NDArray[np.float32], header_above: NDArray[np.bool_]
) -> NDArray[np.float32]:
    """(N,) how dark the paper just above and below each box is (the cleaner of the two).

    ``gap_darkness`` (N, 14) samples a line across the box's width 0.6 mm outside its
    top and bottom outline (7 above, 7 below: `_surround_points_mm`), in the white
    gap between rows.  A pencil mark stays in its box; a stain, a rubber stamp, a
    scanner's dirty-roller band or a pen scribble crossing the row darkens a gap too,
    and then whatever the box holds may be that dirt rather than a mark.  Both gaps
    must be dirty: a stray pen line or a speck in one gap beside a clean mark is
    common and harmless (measured: taking the darker gap flagged a third of the
    synthetic cards).  Above the first row of a block (column letters, digit
    headers: ``header_above``) only the gap below counts.
    """
    # the two means as one matrix product (a mean along an axis of 7 is ~8x slower)
    half = gap_darkness.shape[1] // 2
    weights = np.zeros((gap_darkness.shape[1], 2), np.float32)
    weights[:half, 0] = weights[half:, 1] = 1 / half
    above, below = (gap_darkness @ weights).T
    return np.where(header_above, below, np.minimum(above, below))


@functools.lru_cache(maxsize=4)
def _surround_points_mm(
    layout: CardLayout, gap_mm: float = 0.6
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """(N, 14, 2) gap samples of every box (7 above, 7 below) and the (N,) boxes with
    printed headers above them: a block's first row, the code grid's first digit row,
    the version row (built once per layout)."""
    b = layout.bubble
    xs = np.linspace(-0.4, 0.4, 7) * b.width_mm
    dy = b.height_mm / 2 + gap_mm
    offsets = np.concatenate(
        [np.stack([xs, np.full_like(xs, -dy)], -1), np.stack([xs, np.full_like(xs, dy)], -1)]
    )
    points = layout.box_centers()[:, None, :] + offsets[None, :, :]
    a, g = layout.answers, layout.code_grid
    first_rows = np.concatenate(
        [
            np.repeat(np.arange(a.questions) % a.rows_per_block == 0, len(a.options)),
            np.tile(np.arange(g.rows) == 0, g.columns),
            np.ones(len(layout.version.labels), dtype=bool),
            np.ones(layout.part_count if layout.parts is not None else 0, dtype=bool),
        ]
    )
    points.flags.writeable = False
    first_rows.flags.writeable = False
    return points, first_rows
