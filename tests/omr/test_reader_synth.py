"""The reader on realistic synthetic scans (omr.synth), one test per kind of scanner damage.

The rule checked is the project's first: a card is read right or it goes to review.
On every card each response must be in the truth's acceptable set or be '?'; on a
card reported ok, the code number and version must be right too.

And a reader that doubts everything is as useless as one that guesses: every test
here also holds the reader to a '?' budget and, where the card gives no reason to
doubt it, to status ok, both measured (the figures beside each).  The checks are
functions taking the reader, so `test_a_timid_reader_fails_every_damaged_scan_check`
can run them all on a reader that answers '?' everywhere, or sends every card to
review, and see each of them fail.
"""

import functools

import cv2
import numpy as np
import pytest

import omr.reader
from omr.detect import project_points
from omr.layout import load_layout
from omr.marks import AMBIGUOUS
from omr.reader import read_card
from omr.synth import ScanDamage, random_card_spec, synth_card
from tests.omr import test_reader

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

#: most '?' a careful reader gives on each damage's random card (measured: 0-2 on grey
#: and colour scans, 4 on the 1-bit one; half fills, which spec §2 reads '?', included)
MAX_MARKS = {"bitonal": 6}
MAX_MARKS_GREY = 3

#: a card with nothing to doubt: no half fill, faint stroke or second half mark, the
#: code grid complete and matching, the barcode readable, one version marked
NOTHING_TO_DOUBT = dict(
    half=0.0,
    multiple_half=0.0,
    faint=0.0,
    grid_mismatch=0.0,
    grid_ambiguous=0.0,
    grid_empty=0.0,
    barcode_covered=0.0,
    version_none=0.0,
    version_two=0.0,
)
#: the damages on which such a card is read ok (measured: 8 of 11, with 0 '?'; the
#: perspective and colour cards have one borderline box each, the 1-bit one 12)
OK_WHEN_NOTHING_TO_DOUBT = frozenset(DAMAGES) - {"bitonal", "colour", "perspective"}
MAX_MARKS_NOTHING_TO_DOUBT = {"bitonal": 16}


@functools.cache
def damaged_card(damage: str, nothing_to_doubt: bool = False):
    """The card of that damage (seeded by its name's place), as gray image and truth."""
    seed = sorted(DAMAGES).index(damage) + (100 if nothing_to_doubt else 0)
    spec = random_card_spec(LAYOUT, np.random.default_rng(seed), **(NOTHING_TO_DOUBT if nothing_to_doubt else {}))
    card = synth_card(LAYOUT, spec, DAMAGES[damage], seed=seed)
    image = card.image if card.image.ndim == 2 else cv2.cvtColor(card.image, cv2.COLOR_BGR2GRAY)
    image.setflags(write=False)
    return image, card.truth


def wrong_reads(responses: str, acceptable) -> list:
    """(question, read, acceptable) of every read outside the truth that is not '?'."""
    return [
        (q + 1, ch, ok) for q, (ch, ok) in enumerate(zip(responses, acceptable, strict=True)) if ch not in ok and ch != "?"
    ]


def check_no_silent_error(damage: str, read=read_card) -> None:
    image, truth = damaged_card(damage)
    reading = read(image, LAYOUT)
    assert not wrong_reads(reading.responses, truth["acceptable"])
    if not reading.needs_review:
        assert "?" not in reading.responses
        assert reading.code_number == truth["code_number"]
        assert reading.version == (truth["version"] or "")
    for flag in truth["expected_flags"]:
        assert flag in reading.flags
    assert reading.responses.count("?") <= MAX_MARKS.get(damage, MAX_MARKS_GREY), reading.responses
    px_per_mm = DAMAGES[damage].dpi / 25.4
    found = project_points(reading.homography, LAYOUT.box_centers())
    error_mm = np.linalg.norm(found - np.asarray(truth["box_centers_px"]), axis=1).max() / px_per_mm
    assert error_mm < 0.3


def check_nothing_to_doubt(damage: str, read=read_card) -> None:
    image, truth = damaged_card(damage, nothing_to_doubt=True)
    reading = read(image, LAYOUT)
    assert not wrong_reads(reading.responses, truth["acceptable"])
    assert reading.responses.count("?") <= MAX_MARKS_NOTHING_TO_DOUBT.get(damage, 2), reading.responses
    if damage in OK_WHEN_NOTHING_TO_DOUBT:
        assert not reading.needs_review, reading.flags
        assert reading.code_number == truth["code_number"]


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_no_silent_error(damage):
    check_no_silent_error(damage)


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_card_with_nothing_to_doubt_is_read_ok(damage):
    check_nothing_to_doubt(damage)


#: the light tone curves' '?' budgets (measured: 1 at gamma 0.45, 7 at 0.6)
MAX_MARKS_LIGHT = {0.45: 3, 0.6: 10}


def check_light_tone_curve(gamma: float, read=read_card) -> None:
    """A scanner whose tone curve lightens the greys (or a faded copy) brings every
    pencil fill down to ~0.25 of the marker ink, where fixed levels call them blank."""
    card = _light_card(gamma)
    reading = read(card.image, LAYOUT)
    assert not wrong_reads(reading.responses, card.truth["acceptable"])
    assert reading.responses.count("?") <= MAX_MARKS_LIGHT[gamma], reading.responses


@functools.cache
def _light_spec():
    return random_card_spec(LAYOUT, np.random.default_rng(77), x_candidates=0.0)


@functools.cache
def _light_card(gamma: float):
    return synth_card(LAYOUT, _light_spec(), ScanDamage(dpi=200, gamma=gamma, jpeg_quality=85), seed=77)


@pytest.mark.parametrize("gamma", sorted(MAX_MARKS_LIGHT))
def test_light_tone_curve_is_not_read_blank(gamma):
    check_light_tone_curve(gamma)


@functools.cache
def _dirty_row_card():
    """A grey band (a dirty roller, a stain) over questions 2-3 and the gaps around them."""
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
    return cv2.subtract(image, band), card.truth


def check_dirt_across_a_row(read=read_card) -> None:
    """What looks marked under the band may be the dirt, so those questions are '?' and
    flagged; the card is dirty in two places, so its multiple answers are '?' too
    (``dirty_multiples``), and nothing else is (measured: those two and four '*')."""
    image, truth = _dirty_row_card()
    reading = read(image, LAYOUT)
    assert reading.responses[1:3] == "??"
    assert any(f.startswith("dirty:") and "2" in f.split(":")[1].split(",") for f in reading.flags)
    assert "dirty_multiples" in reading.flags
    others = [q for q, ch in enumerate(reading.responses) if ch == "?" and q not in (1, 2)]
    assert all(truth["acceptable"][q].startswith("*") for q in others), others
    assert not wrong_reads(reading.responses, truth["acceptable"])


def test_dirt_across_a_row_sends_its_marks_to_review():
    check_dirt_across_a_row()


@functools.cache
def _speckled_card():
    spec = random_card_spec(LAYOUT, np.random.default_rng(8), x_candidates=1.0)
    card = synth_card(LAYOUT, spec, ScanDamage(dpi=200), seed=8)
    rng = np.random.default_rng(8)
    image = card.image.copy()
    specks = cv2.dilate((rng.random(image.shape) < 0.02).astype(np.uint8), np.ones((2, 2), np.uint8))
    image[specks > 0] = 40
    return image, card.truth


def check_speckled_copy(read=read_card) -> None:
    """A bad photocopy's speckle can make blank boxes look marked on every row; far
    more '*' than candidates ever give means the levels were fooled: every mark is '?'
    (the card reads ~197 '?' by design), but blank rows that still look blank read '-'
    (measured: 3 of the 7)."""
    image, truth = _speckled_card()
    reading = read(image, LAYOUT)
    assert not wrong_reads(reading.responses, truth["acceptable"])
    assert "implausible_multiples" in reading.flags
    blanks = [q for q, ok in enumerate(truth["acceptable"]) if ok == "-"]
    assert sum(reading.responses[q] == "-" for q in blanks) >= 3


def test_speckled_copy_has_no_unflagged_multiple_answers():
    check_speckled_copy()


def _doubting_everything(features, thresholds):
    """The box classification of a timid reader: every box ambiguous."""
    return np.full(len(features), AMBIGUOUS, np.int8)


def _review_everything(gray, layout, **kwargs):
    """A reader that reads like the real one and sends every card to review."""
    from dataclasses import replace

    return replace(read_card(gray, layout, **kwargs), needs_review=True)


DAMAGED_SCAN_CHECKS = (
    *((f"no_silent_error[{d}]", functools.partial(check_no_silent_error, d)) for d in sorted(DAMAGES)),
    *((f"nothing_to_doubt[{d}]", functools.partial(check_nothing_to_doubt, d)) for d in sorted(DAMAGES)),
    *((f"light_tone_curve[{g}]", functools.partial(check_light_tone_curve, g)) for g in sorted(MAX_MARKS_LIGHT)),
    ("dirt_across_a_row", check_dirt_across_a_row),
    ("speckled_copy", check_speckled_copy),
)


def test_a_timid_reader_fails_every_damaged_scan_check(monkeypatch):
    """Answering '?' everywhere (every card to review) is no way to avoid wrong reads:
    each damaged-scan check above fails on such a reader, and so does the bowed page's."""
    monkeypatch.setattr(omr.reader, "classify_boxes", _doubting_everything)
    passed = []
    for name, check in DAMAGED_SCAN_CHECKS:
        try:
            check()
        except AssertionError:
            continue
        passed.append(name)
    with pytest.raises(AssertionError):
        test_reader.check_slightly_bowed_page(test_reader.marked_card(LAYOUT, test_reader.ANSWERS, dpi=200))
    assert not passed, f"a reader answering '?' everywhere passes {passed}"


def test_a_reader_sending_every_card_to_review_fails_the_checks_of_cards_with_nothing_to_doubt():
    """Reading right but sending every card to review is timid too: the cards with
    nothing to doubt catch it, on every damage where they are read ok."""
    passed = []
    for damage in sorted(OK_WHEN_NOTHING_TO_DOUBT):
        try:
            check_nothing_to_doubt(damage, read=_review_everything)
        except AssertionError:
            continue
        passed.append(damage)
    assert not passed, f"a reader sending every card to review passes {passed}"
