"""The drawn-cross evidence of `omr.strokes`: crosses at any hand, size and resolution
reach the level; speckle, residue, fills, half fills and single strokes do not."""

import cv2
import numpy as np
import pytest

from calibration import bitonal_thresholds
from omr.strokes import diagonal_strokes

LEVEL = bitonal_thresholds().drawn_cross_mark
BOX_MM = (3.0, 2.0)  # the shipped layout's inner box
CELL = 8.0  # mm between the boxes drawn on a test page


def _page(n: int, px_per_mm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A white page of ``n`` cells in a column, its homography and the cells' centres (mm)."""
    side = int(round(CELL * px_per_mm))
    page = np.full((n * side, side), 255, np.uint8)
    centers = np.stack([np.full(n, CELL / 2), CELL * (np.arange(n) + 0.5)], axis=1)
    return page, np.diag([px_per_mm, px_per_mm, 1.0]), centers


def _px(point_mm, px_per_mm):
    return tuple(int(round(c * px_per_mm)) for c in point_mm)


def _draw_crosses(n: int, px_per_mm: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` hand-drawn crosses: arms of 0.2-0.6 mm, reaching 60-130 % of the box, tilted,
    off centre, each arm's ends placed on its own."""
    page, h, centers = _page(n, px_per_mm)
    w, hh = BOX_MM
    for cx, cy in centers:
        reach = rng.uniform(0.6, 1.3)
        dx, dy = rng.normal(0, 0.15, 2)
        thick = max(1, int(round(rng.uniform(0.2, 0.6) * px_per_mm)))
        for sign in (1, -1):
            a = (cx + dx - reach * w / 2 + rng.normal(0, 0.15), cy + dy - sign * reach * hh / 2 + rng.normal(0, 0.15))
            b = (cx + dx + reach * w / 2 + rng.normal(0, 0.15), cy + dy + sign * reach * hh / 2 + rng.normal(0, 0.15))
            cv2.line(page, _px(a, px_per_mm), _px(b, px_per_mm), 0, thick)
    return diagonal_strokes(page, h, centers, BOX_MM)


# measured share of these hands' crosses at the level (200 a resolution): 0.685, 0.85,
# 0.905, 0.90; thin strokes at 150 DPI fall between the tracks and stay '?' (never wrong)
@pytest.mark.parametrize(("dpi", "least_share"), [(150, 0.6), (200, 0.8), (300, 0.85), (600, 0.85)])
def test_hand_drawn_crosses_reach_the_level_at_every_resolution(dpi, least_share):
    evidence = _draw_crosses(200, dpi / 25.4, np.random.default_rng(dpi))
    assert np.mean(evidence >= LEVEL) >= least_share, np.sort(evidence)[:10]


@pytest.mark.parametrize("px_per_mm", [6.0, 8.0, 12.0])
@pytest.mark.parametrize("grain_px", [1, 2])
@pytest.mark.parametrize("density", [0.1, 0.3, 0.5, 0.7, 0.9])
def test_random_speckle_of_any_density_is_no_cross(density, grain_px, px_per_mm):
    """Speckle, dithering or a thresholded residue, 400 boxes (measured over densities
    0.1-0.9 and these resolutions: 1-px grain at most 0.39, 2-px 0.51; 3-px grains, half
    a millimetre of solid ink each at 150 DPI, reach 0.64 and are left to the other rules)."""
    n = 400
    page, h, centers = _page(n, px_per_mm)
    rng = np.random.default_rng(int(density * 10) + 100 * grain_px + int(px_per_mm))
    grains = rng.random((page.shape[0] // grain_px + 1, page.shape[1] // grain_px + 1)) < density
    speckle = np.kron(grains, np.ones((grain_px, grain_px), bool))[: page.shape[0], : page.shape[1]]
    page[speckle] = 0
    evidence = diagonal_strokes(page, h, centers, BOX_MM)
    assert evidence.max() < LEVEL - 0.05


@pytest.mark.parametrize("shape", ["fill", "half fill", "slash", "backslash", "plus", "blob", "letter O"])
def test_shapes_that_are_not_crosses_stay_under_the_level(shape):
    n, px_per_mm = 20, 8.0
    page, h, centers = _page(n, px_per_mm)
    w, hh = BOX_MM
    for cx, cy in centers:
        box = [_px((cx - w / 2, cy - hh / 2), px_per_mm), _px((cx + w / 2, cy + hh / 2), px_per_mm)]
        centre = _px((cx, cy), px_per_mm)
        if shape == "fill":
            cv2.rectangle(page, box[0], box[1], 0, -1)
        elif shape == "half fill":
            cv2.rectangle(page, box[0], _px((cx, cy + hh / 2), px_per_mm), 0, -1)
        elif shape == "slash":
            cv2.line(page, _px((cx - w / 2, cy + hh / 2), px_per_mm), _px((cx + w / 2, cy - hh / 2), px_per_mm), 0, 3)
        elif shape == "backslash":
            cv2.line(page, box[0], box[1], 0, 3)
        elif shape == "plus":
            cv2.line(page, _px((cx - w / 2, cy), px_per_mm), _px((cx + w / 2, cy), px_per_mm), 0, 3)
            cv2.line(page, _px((cx, cy - hh / 2), px_per_mm), _px((cx, cy + hh / 2), px_per_mm), 0, 3)
        elif shape == "blob":
            cv2.circle(page, centre, int(0.7 * px_per_mm), 0, -1)
        else:
            cv2.ellipse(page, centre, (int(0.6 * px_per_mm), int(0.8 * px_per_mm)), 0, 0, 360, 0, 2)
    evidence = diagonal_strokes(page, h, centers, BOX_MM)
    assert evidence.max() < LEVEL - 0.1, evidence


def test_no_boxes_no_work():
    page, h, _ = _page(1, 8.0)
    assert diagonal_strokes(page, h, np.zeros((0, 2)), BOX_MM).shape == (0,)
