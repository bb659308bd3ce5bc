"""The printed card: geometry to 0.1 mm, a decodable barcode, quiet zones, PDF/PNG output."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from omr.layout import load_layout
from omr.render import (
    barcode_modules,
    mm_to_px,
    page_size_px,
    render_blank,
    render_card,
    render_pdf,
    write_png,
)

LAYOUT = load_layout()
CODE = "123456782"


def _to_px(points_mm: np.ndarray, dpi: float) -> np.ndarray:
    h = mm_to_px(dpi)
    return points_mm @ h[:2, :2].T + h[:2, 2]


def _dark_blobs(img: np.ndarray, band_px: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Centroids (K, 2) and bbox sizes (K, 2) of the dark (< 128) printed shapes.

    The centroid is darkness-weighted over the shape's box grown by 2 px, antialiased
    fringe included (a binary centroid of a 2 px outline moves by a pixel when one side
    loses a column); with ``band_px``, only pixels within that band inside the box edge
    count, so that the light-grey letter inside a bubble does not pull an outline.
    """
    _, _, stats, _ = cv2.connectedComponentsWithStats((img < 128).astype(np.uint8), 8)
    stats = stats[1:]
    dark = 255.0 - img
    centres = np.empty((len(stats), 2))
    for i, (x, y, w, h, _) in enumerate(stats):
        x0, y0 = max(x - 2, 0), max(y - 2, 0)
        win = dark[y0:y + h + 2, x0:x + w + 2].copy()
        b = round(band_px or 0) + 3
        if band_px and win.shape[0] > 2 * b and win.shape[1] > 2 * b:
            win[b:-b, b:-b] = 0
        ys, xs = np.indices(win.shape)
        centres[i] = [(win * xs).sum() / win.sum() + x0, (win * ys).sum() / win.sum() + y0]
    return centres, stats[:, 2:4]


def _nearest(expected: np.ndarray, found: np.ndarray) -> np.ndarray:
    """(N,) distance from each expected point to its nearest found point."""
    d = np.linalg.norm(expected[:, None, :] - found[None, :, :], axis=-1)
    return d.min(axis=1)


@pytest.mark.parametrize("dpi", [100, 150, 300, 600])
def test_page_is_the_layout_page_at_dpi(dpi: int) -> None:
    img = render_blank(LAYOUT, dpi=dpi)
    w, h = page_size_px(LAYOUT, dpi)
    assert img.shape == (h, w) and img.dtype == np.uint8
    assert abs(w - 210 * dpi / 25.4) <= 0.5 and abs(h - 297 * dpi / 25.4) <= 0.5
    assert img.max() == 255 and img.min() == 0


@pytest.mark.parametrize("dpi", [200, 300])
def test_markers_and_boxes_are_where_the_layout_says(dpi: int) -> None:
    img = render_card(LAYOUT, CODE, dpi=dpi)
    mm = 25.4 / dpi
    found, sizes = _dark_blobs(img, band_px=None)
    side = LAYOUT.markers.side_mm / mm
    is_marker = (np.abs(sizes - side) < 2).all(axis=1)
    marker_err = _nearest(_to_px(LAYOUT.markers.centers(), dpi), found[is_marker]) * mm
    assert is_marker.sum() == 4
    assert marker_err.max() < 0.1, marker_err

    found, sizes = _dark_blobs(img, band_px=LAYOUT.bubble.outline_width_mm / mm + 1)
    box = np.array([LAYOUT.bubble.width_mm, LAYOUT.bubble.height_mm]) / mm
    is_box = (np.abs(sizes - box) < 2).all(axis=1)
    box_err = _nearest(_to_px(LAYOUT.box_centers(), dpi), found[is_box]) * mm
    assert is_box.sum() == len(LAYOUT.box_centers())
    assert box_err.max() < 0.1, box_err.max()


def test_top_left_marker_has_the_orientation_hole() -> None:
    dpi = 300
    img = render_card(LAYOUT, CODE, dpi=dpi)
    centres = np.rint(_to_px(LAYOUT.markers.centers(), dpi)).astype(int)
    values = img[centres[:, 1], centres[:, 0]]
    assert values[0] == 255 and (values[1:] == 0).all()


def test_nothing_printed_in_the_marker_quiet_zones() -> None:
    dpi = 300
    img = render_card(LAYOUT, CODE, dpi=dpi)
    m = LAYOUT.markers
    s = dpi / 25.4
    ys, xs = np.indices(img.shape)
    for cx, cy in m.centers():
        # pixel-centre distance (Chebyshev, mm) from the marker centre
        d = np.maximum(np.abs((xs + 0.5) / s - cx), np.abs((ys + 0.5) / s - cy))
        zone = (d > m.side_mm / 2 + 1 / s) & (d <= m.side_mm / 2 + m.quiet_zone_mm)
        assert img[zone].min() == 255, (cx, cy)
        assert img[d <= m.side_mm / 2 - 1 / s].min() == 0


def test_box_letters_are_light_grey_not_marks() -> None:
    dpi = 300
    img = render_blank(LAYOUT, dpi=dpi)
    s = dpi / 25.4
    b = LAYOUT.bubble
    x, y = LAYOUT.answers.centers()[0, 0]
    inner = img[round((y - b.inner_height_mm / 2) * s):round((y + b.inner_height_mm / 2) * s),
                round((x - b.inner_width_mm / 2) * s):round((x + b.inner_width_mm / 2) * s)]
    assert inner.min() >= 150  # the letter: light grey, never ink-dark
    assert inner.min() <= 215  # but it is there
    assert inner.mean() > 225


@pytest.mark.parametrize("dpi", [150, 200, 300])
def test_barcode_decodes(dpi: int) -> None:
    from pyzbar import pyzbar

    img = render_card(LAYOUT, CODE, dpi=dpi)
    decoded = pyzbar.decode(img, symbols=[pyzbar.ZBarSymbol.CODE128])
    assert [d.data.decode() for d in decoded] == [CODE]
    # and it lies inside barcode.box
    x0, y0, x1, y1 = LAYOUT.barcode.box_mm
    r = decoded[0].rect
    mm = 25.4 / dpi
    assert x0 <= r.left * mm and (r.left + r.width) * mm <= x1
    assert y0 - 0.2 <= r.top * mm and (r.top + r.height) * mm <= y1


def test_barcode_modules_are_code128() -> None:
    modules = barcode_modules(CODE)
    # start code C (11010011100), stop pattern (1100011101011), 11 modules per symbol
    assert "".join("1" if m else "0" for m in modules[:11]) == "11010011100"
    assert "".join("1" if m else "0" for m in modules[-13:]) == "1100011101011"
    assert (modules.size - 13) % 11 == 0


def test_blank_reuse_gives_the_same_card() -> None:
    blank = render_blank(LAYOUT, dpi=100)
    before = blank.copy()
    assert np.array_equal(render_card(LAYOUT, CODE, dpi=100, blank=blank),
                          render_card(LAYOUT, CODE, dpi=100))
    assert np.array_equal(blank, before)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="decimal digits"):
        render_card(LAYOUT, "12345678X", dpi=100)
    with pytest.raises(ValueError, match="render_blank"):
        render_card(LAYOUT, CODE, dpi=100, blank=np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="dpi"):
        render_blank(LAYOUT, dpi=0)
    with pytest.raises(ValueError, match="at least one"):
        render_pdf(LAYOUT, [], "unused.pdf")


def test_pdf_has_one_a4_page_per_code(tmp_path) -> None:
    import pypdfium2 as pdfium

    path = render_pdf(LAYOUT, [CODE, "000000000"], tmp_path / "cards.pdf", dpi=150)
    pdf = pdfium.PdfDocument(str(path))
    try:
        assert len(pdf) == 2
        w_pt, h_pt = pdf[0].get_size()
        assert abs(w_pt / 72 * 25.4 - 210) < 0.3 and abs(h_pt / 72 * 25.4 - 297) < 0.3
    finally:
        pdf.close()


def test_png_records_dpi(tmp_path) -> None:
    img = render_card(LAYOUT, CODE, dpi=100)
    path = write_png(tmp_path / "card.png", img, dpi=100)
    with Image.open(path) as im:
        assert im.size == (img.shape[1], img.shape[0])
        assert round(im.info["dpi"][0]) == 100
        assert np.array_equal(np.asarray(im), img)
