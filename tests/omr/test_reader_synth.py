"""The reader on realistic synthetic scans (omr.synth), one test per kind of scanner damage.

The rule checked is the project's first: a card is read right or it goes to review.
On every card each response must be in the truth's acceptable set or be '?'; on a
card reported ok, the code number and version must be right too.
"""

import cv2
import numpy as np
import pytest

from omr.detect import project_points
from omr.layout import load_layout
from omr.reader import read_card
from omr.synth import ScanDamage, random_card_spec, synth_card

LAYOUT = load_layout()

DAMAGES = {
    "clean-300": ScanDamage(dpi=300),
    "skew+9-150dpi": ScanDamage(dpi=150, rotation_deg=9.0, blur_sigma_mm=0.06),
    "skew-10-dark-bed": ScanDamage(dpi=200, rotation_deg=-10.0, bed="dark", offset_mm=(8.0, 5.0)),
    "upside-down": ScanDamage(dpi=200, upside_down=True, rotation_deg=2.0),
    "quarter-turn": ScanDamage(dpi=200, quarter_turn=90),
    "perspective": ScanDamage(dpi=200, perspective=0.01),
    "blur-noise-jpeg40": ScanDamage(dpi=200, blur_sigma_mm=0.12, noise_sigma=9.0, jpeg_quality=40),
    "dim-low-contrast": ScanDamage(dpi=200, brightness=-30.0, contrast=0.7, jpeg_quality=70),
    "colour": ScanDamage(dpi=200, color=True, jpeg_quality=85),
    "bitonal": ScanDamage(dpi=300, bitonal=True),
    "600dpi": ScanDamage(dpi=600, blur_sigma_mm=0.05, jpeg_quality=80),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_no_silent_error(damage):
    seed = sorted(DAMAGES).index(damage)
    spec = random_card_spec(LAYOUT, np.random.default_rng(seed))
    card = synth_card(LAYOUT, spec, DAMAGES[damage], seed=seed)
    image = card.image if card.image.ndim == 2 else cv2.cvtColor(card.image, cv2.COLOR_BGR2GRAY)
    truth = card.truth
    reading = read_card(image, LAYOUT)

    wrong = [
        (q + 1, ch, ok)
        for q, (ch, ok) in enumerate(zip(reading.responses, truth["acceptable"], strict=True))
        if ch not in ok and ch != "?"
    ]
    assert not wrong
    if not reading.needs_review:
        assert "?" not in reading.responses
        assert reading.code_number == truth["code_number"]
        assert reading.version == (truth["version"] or "")
    for flag in truth["expected_flags"]:
        assert flag in reading.flags
    px_per_mm = DAMAGES[damage].dpi / 25.4
    found = project_points(reading.homography, LAYOUT.box_centers())
    error_mm = np.linalg.norm(found - np.asarray(truth["box_centers_px"]), axis=1).max() / px_per_mm
    assert error_mm < 0.3


@pytest.mark.parametrize("gamma", [0.45, 0.6])
def test_light_tone_curve_is_not_read_blank(gamma):
    """A scanner whose tone curve lightens the greys (or a faded copy) brings every
    pencil fill down to ~0.25 of the marker ink, where fixed levels call them blank."""
    spec = random_card_spec(LAYOUT, np.random.default_rng(77), x_candidates=0.0)
    card = synth_card(LAYOUT, spec, ScanDamage(dpi=200, gamma=gamma, jpeg_quality=85), seed=77)
    reading = read_card(card.image, LAYOUT)
    wrong = [
        (q + 1, ch, ok)
        for q, (ch, ok) in enumerate(zip(reading.responses, card.truth["acceptable"], strict=True))
        if ch not in ok and ch != "?"
    ]
    assert not wrong
    assert reading.responses.count("?") <= 10


def test_dirt_across_a_row_sends_its_marks_to_review():
    """A grey band (a dirty roller, a stain) over questions 2-3 and the gaps around them:
    what looks marked there may be the dirt, so those questions are '?' and flagged."""
    spec = random_card_spec(LAYOUT, np.random.default_rng(5), x_candidates=0.0, blank=0.0)
    card = synth_card(LAYOUT, spec, ScanDamage(dpi=200), seed=5)
    image = card.image.copy()
    mm_to_px = np.asarray(card.truth["mm_to_px"])
    a = LAYOUT.answers
    top = a.first_center_mm[1] + a.row_pitch_mm * 0.5  # between questions 1 and 2
    bottom = a.first_center_mm[1] + a.row_pitch_mm * 2.5  # between questions 3 and 4
    corners = np.array([[20.0, top], [50.0, top], [50.0, bottom], [20.0, bottom]])
    quad = project_points(mm_to_px, corners).astype(np.int32)
    band = np.zeros_like(image)
    cv2.fillPoly(band, [quad], 110)
    image = cv2.subtract(image, band)
    reading = read_card(image, LAYOUT)
    assert reading.responses[1:3] == "??"
    assert any(f.startswith("dirty:") and "2" in f.split(":")[1].split(",") for f in reading.flags)
    assert reading.responses[0] != "?" and reading.responses[3] != "?"


def test_speckled_copy_has_no_unflagged_multiple_answers():
    """A bad photocopy's speckle can make blank boxes look marked on every row; far
    more '*' than candidates ever give means the levels were fooled: '?' instead."""
    spec = random_card_spec(LAYOUT, np.random.default_rng(8), x_candidates=1.0)
    card = synth_card(LAYOUT, spec, ScanDamage(dpi=200), seed=8)
    rng = np.random.default_rng(8)
    image = card.image.copy()
    specks = cv2.dilate((rng.random(image.shape) < 0.02).astype(np.uint8), np.ones((2, 2), np.uint8))
    image[specks > 0] = 40
    reading = read_card(image, LAYOUT)
    wrong = [
        (q + 1, ch, ok)
        for q, (ch, ok) in enumerate(zip(reading.responses, card.truth["acceptable"], strict=True))
        if ch not in ok and ch != "?"
    ]
    assert not wrong
    assert "implausible_multiples" in reading.flags
