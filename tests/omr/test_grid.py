import cv2
import numpy as np
import pytest

from omr.detect import project_points, to_work_px
from omr.grid import (
    MAX_TEMPLATE_EXCESS,
    MAX_TEMPLATE_RATIO,
    _row_order,
    box_features,
    build_sampling_grid,
    paper_levels,
    remove_print,
    sample_boxes,
)
from omr.layout import load_layout

LAYOUT = load_layout()
GRID = build_sampling_grid(LAYOUT)


def _remove_print_per_group(darkness: np.ndarray) -> np.ndarray:
    """The rule written plainly: one glyph group at a time."""
    glyphs = GRID.glyph_groups
    labels, counts = np.unique(glyphs[glyphs >= 0], return_counts=True)
    members = [np.flatnonzero(glyphs == g) for g in labels[counts >= 5]]
    templates = [np.sort(darkness[m], axis=0)[m.size // 4] for m in members]  # lower quartile
    weights = np.array([t.mean() for t in templates])
    limit = np.median(weights) * MAX_TEMPLATE_RATIO + MAX_TEMPLATE_EXCESS
    out = darkness.copy()
    for m, t, w in zip(members, templates, weights, strict=True):
        if w <= limit:
            out[m] -= t
    return np.clip(out, 0, 1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_print_templates_batched_match_the_per_group_rule(seed):
    rng = np.random.default_rng(seed)
    darkness = (rng.random(GRID.points_mm.shape[:2]) ** 4).astype(np.float32)
    if seed == 2:  # "all C": the C group's template is marks, not print, and is kept
        darkness[GRID.glyph_groups == 2] += 0.6
    np.testing.assert_array_equal(remove_print(darkness, GRID), _remove_print_per_group(darkness))


def test_every_templated_box_has_its_group_row():
    rows = GRID.template_rows
    n_groups = sum(len(b) for b in GRID.template_batches)
    for row, members in enumerate(m for batch in GRID.template_batches for m in batch):
        assert (rows[members] == row).all()
    assert (rows < n_groups).sum() == sum(b.size for b in GRID.template_batches)


def test_features_order_statistics():
    rng = np.random.default_rng(5)
    darkness = rng.random((GRID.points_mm.shape[0], 108)).astype(np.float32)
    features = box_features(darkness, GRID)
    ordered = np.sort(darkness, axis=1)
    np.testing.assert_allclose(features[:, 5], ordered[:, -10:].mean(axis=1), rtol=1e-6)  # peak
    stroke = (darkness >= ordered[:, 27:28] + 0.18).mean(axis=1)
    np.testing.assert_allclose(features[:, 4], stroke, rtol=1e-6)


def _page_homography(degrees: float, px_per_mm: float = 4.0, canvas_px: int = 1300) -> np.ndarray:
    """Layout mm -> pixels of a canvas holding the page turned by ``degrees`` about its centre."""
    turn = np.vstack([cv2.getRotationMatrix2D((105.0, 148.5), degrees, px_per_mm), [0, 0, 1]])
    shift = np.array([[1, 0, canvas_px / 2 - 105.0], [0, 1, canvas_px / 2 - 148.5], [0, 0, 1]])
    return shift @ turn


@pytest.mark.parametrize("quarter_turns", [0, 1, 2, 3])
def test_probes_read_in_row_order_give_the_box_order_values(quarter_turns):
    """Reading the probes band by band (`ProbeOrder`) is only faster: every box gets the
    values a remap in box order gives, on a page upright, sideways or upside down."""
    homography = _page_homography(90.0 * quarter_turns + 1.5)
    gray = np.random.default_rng(quarter_turns).integers(0, 256, (1300, 1300), dtype=np.uint8)
    pts = project_points(homography, GRID.probes_mm).astype(np.float32)
    border = {"borderMode": cv2.BORDER_CONSTANT, "borderValue": 255}
    in_box_order = cv2.remap(gray, pts, None, cv2.INTER_LINEAR, **border)
    expected = np.clip((250 - in_box_order.astype(np.float32)) / 230, 0, 1)[:, : GRID.points_mm.shape[1]]
    paper = np.full(GRID.centers_mm.shape[0], 250, np.float32)
    np.testing.assert_array_equal(sample_boxes(gray, homography, GRID, paper, 20.0).darkness, expected)
    # the bands run along the image's rows: a page scanned sideways takes the other order
    assert _row_order(GRID, homography) is GRID.probe_orders[quarter_turns % 2]


@pytest.mark.parametrize(("degrees", "offset_px"), [(1.5, 0.0), (91.5, 0.0), (181.5, 0.0), (0.5, -200.0)])
def test_paper_levels_filter_only_around_the_boxes_and_read_what_the_whole_page_gives(degrees, offset_px):
    """The paper levels are filtered on a crop around the boxes: the values are those of
    the whole page filtered, also when the boxes reach past the page's edge."""
    factor, px_per_mm = 2, 6.0
    homography = np.diag([0.5, 0.5, 1.0]) @ _page_homography(degrees)  # a 2 px/mm work page
    homography = np.array([[1, 0, offset_px], [0, 1, 0], [0, 0, 1]]) @ homography  # -200: boxes off it
    work = cv2.GaussianBlur(np.random.default_rng(1).integers(0, 256, (650, 650), dtype=np.uint8), (0, 0), 3)
    page_homography = np.diag([factor, factor, 1.0]) @ homography
    pts = project_points(page_homography, GRID.centers_mm)
    assert (offset_px == 0) == (to_work_px(pts, factor).min() > 0)
    k = max(3, int(round(7.0 * px_per_mm / factor)) | 1)
    whole = cv2.blur(cv2.dilate(work, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))), (k, k))
    map_xy = to_work_px(pts, factor).astype(np.float32).reshape(-1, 1, 2)
    expected = cv2.remap(whole, map_xy, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).reshape(-1)
    got = paper_levels(work, factor, page_homography, GRID.centers_mm, px_per_mm)
    np.testing.assert_array_equal(got, expected.astype(np.float32))


def test_outline_at_shifts_matches_the_sampled_outlines_and_peaks_unshifted():
    """Unshifted it reads what `sample_boxes` reads of the outlines; moved by a millimetre
    the weakest edge is lost (what the local registration's search relies on)."""
    from omr.detect import make_work_image, register_page
    from omr.grid import outline_at_shifts, outline_points_mm
    from omr.render import render_card

    page = render_card(LAYOUT, "123456782", dpi=200)
    reg = register_page(page, LAYOUT)
    grid = build_sampling_grid(LAYOUT)
    work, factor = make_work_image(page, 700)
    paper = paper_levels(work, factor, reg.homography, grid.centers_mm, reg.px_per_mm)
    sampled = sample_boxes(page, reg.homography, grid, paper, reg.ink_u8).outline
    boxes = np.arange(400, 450)
    shifts = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, -1.0]])
    weakest, mean = outline_at_shifts(
        page, reg.homography, outline_points_mm(LAYOUT)[boxes], paper[boxes], reg.ink_u8, shifts
    )
    assert weakest.shape == mean.shape == (3, 50)
    np.testing.assert_allclose(weakest[0], sampled[boxes], atol=0.02)
    assert np.median(weakest[0]) > 0.5 and (np.median(weakest[1:], axis=1) < 0.1).all()
    assert (mean >= weakest - 1e-6).all()
