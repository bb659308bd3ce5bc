"""A second look at boxes a 1-bit scan left in doubt: is a cross drawn in them?

Thresholding a scan to black and white destroys the darkness that tells a cross from
an erasure residue: both come out black (see `calibration.bitonal_thresholds`), and
the box features, 108 samples a box, cannot tell a cross with thick arms from speckle
either (measured: an even random speckle of 20-60 % of the samples looks as crossed as
a real cross in 0.5-3.5 % of boxes by their corners, side middles or diagonal bands).
A cross is what neither is: two straight dark strokes, one in each diagonal direction,
with light paper on both sides of each.  This module measures exactly that on the
page's own pixels, along lines, for the few boxes that need it.

For each box and each diagonal direction, straight lines through the box (a few slopes
around the box's diagonal, a few offsets from its centre: hands do not draw corner to
corner) are sampled at ``_ALONG`` points, each as the mean of three parallel pixel
tracks (a stroke is a band, not a line); a line's *contrast* is its darkness minus
the darker of the two lines parallel to it ``_SIDE`` away (the paper beside the
stroke), judged on their outer thirds (their middle crosses the other arm).  The
direction's evidence is its best line's contrast, the box's the weaker of its two
directions.  An even residue, a fill or speckle has no line darker than
both its sides (measured in `tests/omr/test_strokes.py` and `bench/RESULTS.md`); one
stroke (a slash) has one direction only.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from omr.detect import project_points

__all__ = ["diagonal_strokes"]

#: points along each line, in the box's unit square (its inner area is [-0.5, 0.5]^2)
_ALONG = np.linspace(-0.42, 0.42, 30)
#: slopes in the unit square (1 = the box's diagonal) and offsets of the lines tried
_SLOPES = (0.6, 0.8, 1.0, 1.25, 1.6)
_OFFSETS = (-0.12, -0.06, 0.0, 0.06, 0.12)
#: how far beside a line its two comparison lines run, across the line (unit square)
_SIDE = 0.3
#: the three parallel tracks of a line, across it (unit square)
_TRACKS = (-0.025, 0.0, 0.025)
#: a line is judged by the lightest of this many stretches along it
_SEGMENTS = 3
#: the part of the box sampled (the outline and what touches it are left out)
_INSIDE = 0.44


def _line_points() -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """(2, L, 3, T, A, 2) unit-square points of every line and its two sides, and
    which lie inside the box: direction (\\ /), line hypothesis, (side -, line, side +),
    track, point along, (u, v)."""
    per_direction = []
    for sign in (1.0, -1.0):
        lines = []
        for slope in _SLOPES:
            # unit direction of the line and its normal, in the unit square
            d = np.array([1.0, sign * slope]) / np.hypot(1.0, slope)
            n = np.array([-d[1], d[0]])
            for offset in _OFFSETS:
                centre = n * offset
                sides = []
                for across in (-_SIDE, 0.0, _SIDE):
                    tracks = [centre + n * (across + t) + _ALONG[:, None] * d for t in _TRACKS]
                    sides.append(tracks)
                lines.append(sides)
        per_direction.append(lines)
    points = np.asarray(per_direction, dtype=np.float64)
    inside = (np.abs(points) <= _INSIDE).all(axis=-1)
    return points, inside


_POINTS, _INSIDE_MASK = _line_points()
_OUTER_THIRDS = np.abs(_ALONG) > _ALONG.max() / 3


def diagonal_strokes(
    gray: NDArray[np.uint8],
    homography: NDArray[np.float64],
    centers_mm: NDArray[np.float64],
    inner_size_mm: tuple[float, float],
) -> NDArray[np.float32]:
    """(K,) cross evidence of K boxes of a black-and-white page: the weaker diagonal
    direction's best stroke contrast (0 none .. 1 a black stroke on white paper).

    Parameters
    ----------
    gray : (H, W) uint8, the page as scanned (black 0, white 255)
    homography : layout millimetres -> page pixels
    centers_mm : (K, 2) box centres in layout millimetres (any local shift included)
    inner_size_mm : the boxes' inner width and height

    >>> import cv2
    >>> page = np.full((200, 200), 255, np.uint8)
    >>> _ = cv2.line(page, (82, 88), (118, 112), 0, 3); _ = cv2.line(page, (82, 112), (118, 88), 0, 3)
    >>> h = np.diag([10.0, 10.0, 1.0])  # 10 px per mm: a 3 x 2 mm box at (10, 10) mm
    >>> float(diagonal_strokes(page, h, np.array([[10.0, 10.0]]), (3.0, 2.0))[0]) > 0.6
    True
    >>> page[:] = 255; _ = cv2.line(page, (82, 88), (118, 112), 0, 3)  # one stroke: a slash
    >>> float(diagonal_strokes(page, h, np.array([[10.0, 10.0]]), (3.0, 2.0))[0])
    0.0
    """
    centers = np.asarray(centers_mm, dtype=np.float64).reshape(-1, 2)
    if centers.shape[0] == 0:
        return np.zeros(0, np.float32)
    size = np.asarray(inner_size_mm, dtype=np.float64)
    mm = centers[:, None, :] + (_POINTS.reshape(-1, 2) * size)[None]  # (K, P, 2)
    px = project_points(homography, mm)
    h, w = gray.shape
    x = np.clip(np.rint(px[..., 0]).astype(np.intp), 0, w - 1)
    y = np.clip(np.rint(px[..., 1]).astype(np.intp), 0, h - 1)
    dark = (gray[y, x] < 128).reshape(centers.shape[0], *_POINTS.shape[:-1]).astype(np.float32)
    inside = _INSIDE_MASK[None]
    # darkness of each line and of its two sides: the mean over tracks and points inside
    counts = inside.sum(axis=(-2, -1))
    darkness = (dark * inside).sum(axis=(-2, -1)) / np.maximum(counts, 1)  # (K, 2, L, 3)
    # the sides are judged on their outer thirds: the middle third crosses the other arm
    # (measured: judged whole, half the crosses at 150 DPI read as no cross)
    side_in = inside & _OUTER_THIRDS
    side_dark = (dark * side_in).sum(axis=(-2, -1)) / np.maximum(side_in.sum(axis=(-2, -1)), 1)
    enough = counts.min(axis=-1) >= len(_TRACKS) * len(_ALONG) // 3  # a line mostly outside says nothing
    # a drawn stroke is dark all along: the line counts by its lightest third (a chance
    # alignment of specks is dark in places)
    segment_dark = (dark[..., 1, :, :] * inside[..., 1, :, :]).reshape(*dark.shape[:3], len(_TRACKS), _SEGMENTS, -1)
    segment_in = np.broadcast_to(inside[..., 1, :, :], dark.shape[:3] + inside.shape[-2:])
    segment_in = segment_in.reshape(*dark.shape[:3], len(_TRACKS), _SEGMENTS, -1)
    segment_counts = segment_in.sum(axis=(3, 5))
    segments = np.where(segment_counts > 0, segment_dark.sum(axis=(3, 5)) / np.maximum(segment_counts, 1), 1.0)
    line = np.minimum(darkness[..., 1], segments.min(axis=-1))
    contrast = line - np.maximum(side_dark[..., 0], side_dark[..., 2])
    contrast = np.where(enough, contrast, -1.0)
    best_per_direction = contrast.max(axis=2)  # (K, 2)
    return np.clip(best_per_direction.min(axis=1), 0.0, 1.0).astype(np.float32)
