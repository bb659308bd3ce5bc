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

All sample points of all boxes (~1,100 boxes × 192 points) are mapped through the
page homography and read with a single ``cv2.remap``.  Values are turned into
*darkness*: 0 at the local paper white, 1 at the marker ink, so features do not
depend on the scanner's brightness, paper tint or the pencil's shade of grey.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from omr.detect import project_points
from omr.layout import CardLayout

__all__ = [
    "FEATURE_NAMES",
    "SamplingGrid",
    "box_features",
    "build_sampling_grid",
    "paper_levels",
    "sample_darkness",
]

#: columns of the feature matrix returned by `box_features`
FEATURE_NAMES = ("fill", "ink", "asymmetry", "core")
#: darkness from which a sample counts as "clearly dark" (half-way paper → ink)
CLEARLY_DARK = 0.5


@dataclass(frozen=True, slots=True)
class SamplingGrid:
    """Where to sample each box, in layout millimetres.

    points_mm : (N, S, 2) float64, S sample points inside each of the N boxes
    centers_mm : (N, 2) float64, box centres (``layout.box_centers()`` order)
    halves : (4, S) bool, which samples lie in the left, right, top, bottom half
    core : (S,) bool, samples in the central half (by area) of the inner box
    """

    points_mm: NDArray[np.float64]
    centers_mm: NDArray[np.float64]
    halves: NDArray[np.bool_]
    core: NDArray[np.bool_]


def build_sampling_grid(layout: CardLayout, samples_x: int = 16, samples_y: int = 12) -> SamplingGrid:
    """Sample points over the inner area of every box of ``layout``.

    >>> from omr.layout import load_layout
    >>> grid = build_sampling_grid(load_layout())
    >>> grid.points_mm.shape
    (1094, 192, 2)
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
    return SamplingGrid(
        points_mm=centers[:, None, :] + offsets[None, :, :],
        centers_mm=centers,
        halves=halves,
        core=core,
    )


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
    background = cv2.blur(cv2.dilate(work, kernel), (k, k))
    pts = project_points(homography, centers_mm) / work_factor  # see make_work_image
    map_xy = pts.astype(np.float32).reshape(-1, 1, 2)
    values = cv2.remap(background, map_xy, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return values.reshape(-1).astype(np.float32)


def sample_darkness(
    gray: NDArray[np.uint8],
    homography: NDArray[np.float64],
    grid: SamplingGrid,
    paper: NDArray[np.float32],
    ink_u8: float,
) -> NDArray[np.float32]:
    """(N, S) darkness of every sample: 0 = local paper, 1 = marker ink (clipped to [0, 1]).

    Parameters
    ----------
    gray : (H, W) uint8 ndarray, the page
    homography : (3, 3) layout mm -> image px
    grid : SamplingGrid
    paper : (N,) float32 local paper level per box (`paper_levels`)
    ink_u8 : grey level of the printed markers' ink on this page
    """
    pts = project_points(homography, grid.points_mm).astype(np.float32)  # (N, S, 2)
    values = cv2.remap(gray, pts, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=255)
    span = np.maximum(paper - np.float32(ink_u8), np.float32(20.0))[:, None]
    darkness = (paper[:, None] - values.astype(np.float32)) / span
    return np.clip(darkness, 0.0, 1.0)


def box_features(darkness: NDArray[np.float32], grid: SamplingGrid) -> NDArray[np.float32]:
    """(N, F) features per box, columns as `FEATURE_NAMES`.

    fill : mean darkness of the inner area
    ink : share of clearly dark samples (darkness >= 0.5); a thin pen X has few
        but clearly dark pixels, an erasure residue many light ones
    asymmetry : largest difference of ``ink`` between left/right or top/bottom
        halves: high for a half-filled box, low for a fill or a cross
    core : mean darkness of the central half of the box (marks centre on the box;
        a stray line or a misregistered outline touches the rim)
    """
    clearly = (darkness >= CLEARLY_DARK).astype(np.float32)
    fill = darkness.mean(axis=1)
    ink = clearly.mean(axis=1)
    half_ink = (clearly @ grid.halves.T.astype(np.float32)) / grid.halves.sum(axis=1).astype(np.float32)
    asymmetry = np.maximum(np.abs(half_ink[:, 0] - half_ink[:, 1]), np.abs(half_ink[:, 2] - half_ink[:, 3]))
    core = darkness[:, grid.core].mean(axis=1)
    return np.stack([fill, ink, asymmetry, core], axis=1).astype(np.float32)
