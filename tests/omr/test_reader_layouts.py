"""The shipped CEM layouts (cem-100 in two parts, pes-120) read like the 200-question card.

Same checks as tests/omr/test_reader_synth.py -- no silent error, the expected flags,
box centres registered within 0.3 mm -- at 150 to 300 DPI, and the part number of a
card of several parts: barcode digit and part row, agreeing, or flagged.
"""

import cv2
import numpy as np
import pytest

from omr.detect import project_points
from omr.layout import load_layout
from omr.reader import read_card
from omr.render import draw_barcode, render_card
from omr.synth import ScanDamage, random_card_spec, synth_card
from tests.omr.reader_helpers import fill_box

CEM = load_layout("cem-100")
PES = load_layout("pes-120")

DAMAGES = {
    "clean-300": ScanDamage(dpi=300),
    "skew+9-150dpi": ScanDamage(dpi=150, rotation_deg=9.0, blur_sigma_mm=0.06),
    "upside-down-200": ScanDamage(dpi=200, upside_down=True, rotation_deg=2.0),
    "blur-noise-jpeg40-200": ScanDamage(dpi=200, blur_sigma_mm=0.12, noise_sigma=9.0, jpeg_quality=40),
    "quarter-turn-250": ScanDamage(dpi=250, quarter_turn=90, jpeg_quality=80),
}


def _gray(image):
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


@pytest.mark.parametrize("damage", sorted(DAMAGES))
@pytest.mark.parametrize("name", ["cem-100", "pes-120"])
def test_new_layouts_read_without_silent_error(name, damage):
    layout = load_layout(name)
    seed = sorted(DAMAGES).index(damage) + 10 * (name == "pes-120")
    rng = np.random.default_rng(seed)
    part = 1 + seed % 2 if layout.parts is not None else None
    spec = random_card_spec(layout, rng, part=part)
    card = synth_card(layout, spec, DAMAGES[damage], seed=seed)
    truth = card.truth
    reading = read_card(_gray(card.image), layout)

    assert len(reading.responses) == layout.questions
    wrong = [(q + 1, ch, ok) for q, (ch, ok) in enumerate(zip(reading.responses, truth["acceptable"],
                                                               strict=True)) if ch not in ok and ch != "?"]
    assert not wrong
    if not reading.needs_review:
        assert "?" not in reading.responses
        assert reading.code_number == truth["code_number"]
        assert reading.version == (truth["version"] or "")
    for flag in truth["expected_flags"]:
        assert flag in reading.flags
    assert reading.part == ("" if part is None else str(part))
    assert not any(f.startswith("part_") for f in reading.flags)
    px_per_mm = DAMAGES[damage].dpi / 25.4
    found = project_points(reading.homography, layout.box_centers())
    error_mm = np.linalg.norm(found - np.asarray(truth["box_centers_px"]), axis=1).max() / px_per_mm
    assert error_mm < 0.3


@pytest.mark.parametrize("part", [1, 2])
def test_a_part_card_carries_its_part_in_barcode_and_row(part):
    img = render_card(CEM, "123456782", dpi=200, part=part)
    fill_box(img, CEM.version.centers()[0], 200)
    reading = read_card(img, CEM)
    assert (reading.part, reading.code_number, reading.barcode) == (str(part), "123456782", f"123456782{part}")
    assert reading.flags == () and not reading.needs_review
    assert reading.box_states[CEM.box_slices()["part"]].tolist() == [part == 1, part == 2]


def _cover_barcode(img, dpi=200):
    x0, y0, x1, y1 = (round(v * dpi / 25.4) for v in CEM.barcode.box_mm)
    img[y0:y1, x0:x1] = 255


def test_barcode_and_part_row_that_disagree_go_to_review():
    img = render_card(CEM, "123456782", dpi=200, part=1)
    fill_box(img, CEM.version.centers()[0], 200)
    _cover_barcode(img)
    draw_barcode(img, CEM, "1234567822", dpi=200)  # a part-2 label stuck on a part-1 card
    reading = read_card(img, CEM)
    assert reading.part == "2" and "part_mismatch" in reading.flags and reading.needs_review


def test_without_barcode_the_part_row_decides():
    img = render_card(CEM, "123456782", dpi=200, part=2)
    fill_box(img, CEM.version.centers()[0], 200)
    for j, d in enumerate("123456782"):
        fill_box(img, CEM.code_grid.centers()[j, int(d)], 200)
    _cover_barcode(img)
    reading = read_card(img, CEM)
    assert (reading.part, reading.code_number) == ("2", "123456782")
    assert reading.flags == ("barcode_unreadable",) and not reading.needs_review


def test_a_part_row_marked_twice_leaves_the_barcode_deciding():
    img = render_card(CEM, "123456782", dpi=200, part=1)
    fill_box(img, CEM.version.centers()[0], 200)
    fill_box(img, CEM.parts.centers()[1], 200)  # the candidate filled part 2 as well
    reading = read_card(img, CEM)
    assert reading.part == "1" and reading.flags == ("part_row_unreadable",) and not reading.needs_review


def test_neither_barcode_nor_part_row_is_part_unreadable():
    img = render_card(CEM, "123456782", dpi=200, part=1)
    fill_box(img, CEM.version.centers()[0], 200)
    fill_box(img, CEM.parts.centers()[1], 200)
    _cover_barcode(img)
    reading = read_card(img, CEM)
    assert reading.part == "" and "part_unreadable" in reading.flags and reading.needs_review


def test_pes_card_has_no_part():
    img = render_card(PES, "123456782", dpi=150)
    fill_box(img, PES.version.centers()[2], 150)
    reading = read_card(img, PES)
    assert (reading.part, reading.version, reading.flags, len(reading.responses)) == ("", "C", (), 120)
