import cv2
import numpy as np
import pytest

from omr.layout import load_layout
from omr.reader import read_card
from tests.omr.reader_helpers import marked_card, random_answers, rotate

LAYOUT = load_layout()
ANSWERS = random_answers(LAYOUT, seed=3)


def jpeg(img, quality):
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)


def noisy(img, sigma, seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8)


DEGRADATIONS = {
    "clean": lambda im: im,
    "skew+7": lambda im: rotate(im, 7),
    "skew-9-dark-bed": lambda im: rotate(im, -9, border=25),
    "upside-down": lambda im: np.ascontiguousarray(im[::-1, ::-1]),
    "quarter-turn": lambda im: np.ascontiguousarray(np.rot90(im)),
    "blur": lambda im: cv2.GaussianBlur(im, (0, 0), 1.2),
    "noise+jpeg40": lambda im: jpeg(noisy(im, 10), 40),
    "dim": lambda im: (im * 0.6 + 60).astype(np.uint8),
    "shadow-gradient": lambda im: (im * np.linspace(0.45, 1.0, im.shape[1])[None, :]).astype(np.uint8),
    "gamma": lambda im: (255 * (im / 255.0) ** 2.2).astype(np.uint8),
    "mirrored": lambda im: np.ascontiguousarray(im[:, ::-1]),
    "mirrored-vertically": lambda im: np.ascontiguousarray(im[::-1, :]),
}


@pytest.fixture(scope="module")
def card200():
    return marked_card(LAYOUT, ANSWERS, dpi=200)


@pytest.mark.parametrize("damage", sorted(DEGRADATIONS))
def test_reads_a_filled_card(card200, damage):
    reading = read_card(DEGRADATIONS[damage](card200), LAYOUT)
    assert reading.responses == ANSWERS
    assert reading.code_number == "123456782"
    assert reading.version == "A"
    assert not reading.needs_review, reading.flags


@pytest.mark.parametrize("dpi", [150, 300])
def test_reads_crosses(dpi):
    img = marked_card(LAYOUT, ANSWERS, dpi=dpi, style="x")
    reading = read_card(jpeg(cv2.GaussianBlur(img, (0, 0), 0.1 * dpi / 25.4), 60), LAYOUT)
    assert reading.responses == ANSWERS


def test_grid_barcode_disagreement_goes_to_review():
    img = marked_card(LAYOUT, ANSWERS, grid_code="123456791")
    reading = read_card(img, LAYOUT)
    assert reading.code_number == "123456782"
    assert "code_mismatch" in reading.flags
    assert reading.needs_review


def test_missing_version_goes_to_review():
    reading = read_card(marked_card(LAYOUT, ANSWERS, version=None), LAYOUT)
    assert reading.version == ""
    assert "version_missing" in reading.flags
    assert reading.needs_review


def test_features_and_states_cover_every_box(card200):
    reading = read_card(card200, LAYOUT)
    n = LAYOUT.box_centers().shape[0]
    assert reading.box_features.shape[0] == n
    assert reading.box_states.shape == (n,)


def test_another_form_with_the_same_corner_marks_is_not_read(card200):
    from omr.errors import PageNotFoundError
    from omr.render import render_blank

    # keep the markers, wipe everything printed between them
    other = np.full_like(card200, 255)
    blank = render_blank(LAYOUT, dpi=200)
    for cx, cy in LAYOUT.markers.centers() * 200 / 25.4:
        y0, y1, x0, x1 = int(cy - 40), int(cy + 40), int(cx - 40), int(cx + 40)
        other[y0:y1, x0:x1] = blank[y0:y1, x0:x1]
    cv2.putText(other, "ANKIETA", (300, 800), cv2.FONT_HERSHEY_SIMPLEX, 4, 0, 8)
    with pytest.raises(PageNotFoundError, match="bubble outlines are not where"):
        read_card(other, LAYOUT)


def _block3_moved(card, down_px, right_px):
    """The card with the strip of answer block 3 (x 90-130 mm, below the header) moved."""
    page = card.copy()
    s = 200 / 25.4
    y0, x0, x1 = int(60 * s), int(90 * s), int(130 * s)
    page[y0:, x0:x1] = np.roll(np.roll(card[y0:, x0:x1], down_px, axis=0), right_px, axis=1)
    return page


@pytest.mark.parametrize(("down_px", "right_px"), [(9, 0), (-7, 6), (9, -8)])
def test_a_block_moved_by_a_crease_is_registered_on_its_own_outlines(card200, down_px, right_px):
    """A strip of the page shifted by ~1-1.5 mm (a crease): that block's outlines are
    not where the markers put them (it was read as it fell, `registration_doubtful`).
    Its rows are registered again on their own printed outlines and read right; the
    card goes to review for it (`registration_local`)."""
    page = _block3_moved(card200, down_px, right_px)
    reading = read_card(page, LAYOUT)
    local = [f for f in reading.flags if f.startswith("registration_local:")]
    assert local and "81-90" in local[0] and "111-120" in local[0], reading.flags
    assert not any(f.startswith("registration_doubtful:answers3") for f in reading.flags)
    assert reading.responses == ANSWERS
    assert reading.needs_review
    # the overlay draws block 3 where it was read: its shift, and nothing else moved
    shifts = reading.box_shifts_mm[:1000].reshape(200, 5, 2)
    mm = 25.4 / 200
    assert np.allclose(shifts[80:120, :, 0], right_px * mm, atol=0.2)  # the outlines tolerate ~0.15 mm
    assert np.allclose(shifts[80:120, :, 1], down_px * mm, atol=0.2)
    assert not shifts[:80].any() and not shifts[120:].any()


def test_a_fold_that_grows_down_a_block_is_followed_run_by_run(card200):
    """Block 3 displaced more and more down the page (0.6 to 2.1 mm), as by a fold: runs
    of ten rows past 1.25 mm are moved only next to a moved run with a close shift."""
    s = 200 / 25.4
    page = card200.copy()
    x0, x1 = int(90 * s), int(130 * s)
    for k, down_mm in enumerate((0.6, 1.1, 1.6, 2.1)):  # questions 81-90, ..., 111-120
        y0, y1 = int((77.5 + 50 * k) * s), int((77.5 + 50 * (k + 1)) * s)
        shift = int(round(down_mm * s))
        page[y0 + shift : y1 + shift, x0:x1] = card200[y0:y1, x0:x1]
    reading = read_card(page, LAYOUT)
    local = [f for f in reading.flags if f.startswith("registration_local:")]
    assert local == ["registration_local:81-90,91-100,101-110,111-120"], reading.flags
    assert reading.responses == ANSWERS and reading.needs_review


def test_runs_displaced_past_half_a_row_are_not_read_on_their_neighbours(card200):
    """Thirty rows displaced 3 mm down, the ten above them in place: 2 mm up fits as
    well (the outlines repeat every 5 mm), onto the rows above. Those runs must not be
    moved: their questions read '?' (or, by chance, the same letter), never another
    row's answer."""
    s = 200 / 25.4
    page = card200.copy()
    x0, x1 = int(90 * s), int(130 * s)
    y0, y1 = int(127.5 * s), int(277.5 * s)  # questions 91-120
    page[y0 + int(3 * s) : y1 + int(3 * s), x0:x1] = card200[y0:y1, x0:x1]
    reading = read_card(page, LAYOUT)
    assert any(f.startswith("registration_doubtful:answers3") for f in reading.flags), reading.flags
    assert not any(f.startswith("registration_local:") for f in reading.flags)
    assert reading.needs_review
    for q in range(91, 121):
        assert reading.responses[q - 1] in ("?", ANSWERS[q - 1]), q


@pytest.mark.parametrize("answers", ["C" * 200, "C" * 150 + "AB" * 25, "-" * 190 + "E" * 10])
def test_one_letter_everywhere_is_still_read(answers):
    # the print template is learned from the boxes; a candidate guessing "all C" must
    # not teach it that a filled C box is print
    reading = read_card(marked_card(LAYOUT, answers, dpi=150), LAYOUT)
    assert reading.responses == answers


@pytest.mark.parametrize("code", ["111111118", "000000000"])
def test_repeated_code_digits_are_read_from_the_grid(code):
    img = marked_card(LAYOUT, ANSWERS, code=code, dpi=150)
    x0, y0, x1, y1 = (np.array(LAYOUT.barcode.box_mm) * 150 / 25.4).astype(int)
    img[y0:y1, x0:x1] = 255  # no barcode: the grid must carry the code
    reading = read_card(img, LAYOUT)
    assert reading.grid == code
    assert reading.code_number == code
    assert "barcode_unreadable" in reading.flags


def test_rows_shifted_by_a_fold_are_not_read_silently(card200):
    # rows of questions 10-14 slide 2.5 mm down (a fold): their marks now sit between rows
    page = card200.copy()
    s = 200 / 25.4
    x0, x1 = int(25 * s), int(60 * s)
    y0, y1 = int((80 + 9 * 5 - 2.5) * s), int((80 + 14 * 5 - 2.5) * s)
    page[y0:y1, x0:x1] = card200[y0 - int(2.5 * s) : y1 - int(2.5 * s), x0:x1]
    reading = read_card(page, LAYOUT)
    assert reading.needs_review
    for q in range(10, 15):
        assert reading.responses[q - 1] in ("?", ANSWERS[q - 1]), q
    assert any(f.startswith("misplaced:") for f in reading.flags)


def test_bitonal_scan_reads_fills_and_sends_doubt_to_review(card200):
    from omr.reader import is_bitonal
    from tests.omr.reader_helpers import fill_box

    page = card200.copy()
    centers = LAYOUT.answers.centers()
    # question 1: a residue of an erasure next to the real answer; 1-bit turns it to specks
    rng = np.random.default_rng(0)
    residue = page.copy()
    fill_box(residue, centers[0, (LAYOUT.options.index(ANSWERS[0]) + 1) % 5], 200, value=120, style="residue")
    speckle = rng.random(page.shape) < 0.35
    page = np.where(speckle & (residue < page), residue, page)
    one_bit = np.where(page < 160, 0, 255).astype(np.uint8)
    assert is_bitonal(one_bit) and not is_bitonal(card200)
    reading = read_card(one_bit, LAYOUT)
    assert "bitonal" in reading.flags
    assert reading.responses[0] in ("?", ANSWERS[0])
    assert all(r == a for r, a in zip(reading.responses[1:], ANSWERS[1:], strict=True))


def test_faint_line_is_not_a_mark():
    img = marked_card(LAYOUT, "-" * 200, dpi=200)
    s = 200 / 25.4
    for q in range(10):
        x, y = LAYOUT.answers.centers()[q, 2]
        p0 = (int((x - 1.4) * s), int((y + 0.9) * s))
        p1 = (int((x + 1.4) * s), int((y - 0.9) * s))
        cv2.line(img, p0, p1, 175, max(1, int(0.3 * s)))  # one light pencil stroke
    reading = read_card(cv2.GaussianBlur(img, (0, 0), 0.8), LAYOUT)
    assert set(reading.responses[:10]) <= {"-", "?"}


def bowed(card, bow_px):
    """A page that is not flat: the middle bulges sideways by ``bow_px`` while the corners
    (markers) stay put; one homography cannot follow it."""
    h, w = card.shape
    yy, xx = np.mgrid[0:h, 0:w]
    return cv2.remap(
        card,
        (xx + bow_px * np.sin(yy / h * np.pi)).astype(np.float32),
        yy.astype(np.float32),
        cv2.INTER_LINEAR,
        borderValue=255,
    )


def check_slightly_bowed_page(card, read=read_card):
    """Bowed by 6 px (0.8 mm at 200 DPI): every run is read on its own outlines and
    read right, not a '?' on it (measured: 0), and the card goes to review for it."""
    reading = read(bowed(card, 6), LAYOUT)
    assert reading.needs_review
    assert any(f.startswith("registration_local:") for f in reading.flags), reading.flags
    assert reading.responses == ANSWERS


def test_slightly_bowed_page_is_read_on_local_outlines_and_goes_to_review(card200):
    check_slightly_bowed_page(card200)


def test_badly_bowed_page_is_not_read(card200):
    # bent by 15 px (1.9 mm): no registration puts the outlines where they are, an
    # error row (which is also not a silent error)
    from omr.errors import PageNotFoundError

    with pytest.raises(PageNotFoundError, match="bubble outlines are not where"):
        read_card(bowed(card200, 15), LAYOUT)


def test_a_mirrored_image_is_read_and_flagged_with_the_homography_of_the_image_as_it_is(card200):
    from omr.detect import project_points

    mirrored = np.ascontiguousarray(card200[:, ::-1])
    reading = read_card(mirrored, LAYOUT)
    assert "mirrored" in reading.flags and not reading.needs_review
    assert reading.responses == ANSWERS and reading.code_number == "123456782"
    # the layout's top-left marker lies at the image's top right, where the flip put it
    top_left = project_points(reading.homography, LAYOUT.markers.centers()[:1])[0]
    h, w = mirrored.shape
    assert top_left[0] > 0.8 * w and top_left[1] < 0.2 * h


@pytest.mark.parametrize("turn", ["as-scanned", "upside-down"])
@pytest.mark.parametrize("marker", [0, 1, 2, 3])
def test_a_card_with_one_marker_covered_is_read_on_the_other_three_and_goes_to_review(card200, marker, turn):
    from omr.reader import MARKER_NAMES

    page = card200.copy()
    scale = 200 / 25.4
    cx, cy = (LAYOUT.markers.centers()[marker] * scale).astype(int)
    half = int(5 * scale)
    page[cy - half : cy + half, cx - half : cx + half] = 255  # a sticker over the marker
    if turn == "upside-down":
        page = np.ascontiguousarray(page[::-1, ::-1])
    reading = read_card(page, LAYOUT)
    assert reading.responses == ANSWERS and reading.code_number == "123456782"
    assert f"marker_missing:{MARKER_NAMES[marker]}" in reading.flags
    assert reading.needs_review


def _shifted(registration, right_mm, down_mm):
    """The registration's homography moved on the image by the given millimetres."""
    s = registration.px_per_mm
    shift = np.array([[1.0, 0.0, right_mm * s], [0.0, 1.0, down_mm * s], [0.0, 0.0, 1.0]])
    return shift @ registration.homography


def test_a_registration_the_outlines_reject_is_followed_by_the_next_one(card200, monkeypatch):
    """Dirt bands or stains can pass for two markers with a fit as good as the true
    markers' (measured: 0.57 mm on an Augraphy scan whose true bottom markers sat in a
    dirt band): the printed outlines reject it, and the search's next registration is
    read instead of the page being given up."""
    from dataclasses import replace

    import omr.reader
    from omr.detect import marker_registrations

    def with_a_wrong_one_first(gray, layout, params, *, work):
        registrations = marker_registrations(gray, layout, params, work=work)
        true = next(registrations)
        yield replace(true, homography=_shifted(true, 2.5, 2.5))  # boxes in the gaps between boxes
        yield true

    monkeypatch.setattr(omr.reader, "marker_registrations", with_a_wrong_one_first)
    reading = read_card(card200, LAYOUT)
    assert reading.responses == ANSWERS and reading.code_number == "123456782"
    assert not reading.needs_review, reading.flags


def test_a_page_whose_every_registration_the_outlines_reject_is_not_read(card200, monkeypatch):
    from dataclasses import replace

    import omr.reader
    from omr.detect import marker_registrations
    from omr.errors import PageNotFoundError

    def only_wrong_ones(gray, layout, params, *, work):
        true = next(marker_registrations(gray, layout, params, work=work))
        for right_mm in (2.5, -2.5):
            yield replace(true, homography=_shifted(true, right_mm, 2.5))

    monkeypatch.setattr(omr.reader, "marker_registrations", only_wrong_ones)
    with pytest.raises(PageNotFoundError, match="bubble outlines are not where"):
        read_card(card200, LAYOUT)


def test_a_dark_speck_in_a_blank_box_is_not_a_mark_but_a_tick_is():
    """A speck of dirt as dark as a pen line, in a blank row, is compact: its spread
    is under the level, so it reads '?' (without the level: 'C', a wrong answer
    nobody is told to look at); a short tick of the same darkness, alone on its row,
    runs across the box and is the answer."""
    from dataclasses import replace

    from calibration import MarkThresholds
    from omr.grid import Feature

    answers = "--" + "A" * (LAYOUT.questions - 2)
    img = marked_card(LAYOUT, answers, dpi=300)
    s = 300 / 25.4
    centers = LAYOUT.answers.centers()
    x, y = centers[0, 2]  # question 1, C: a speck
    cv2.circle(img, (int(round(x * s)), int(round(y * s))), int(round(0.6 * s)), 30, -1)
    x, y = centers[1, 2]  # question 2, C: a tick
    cv2.line(img, (int((x - 0.8) * s), int(y * s)), (int((x - 0.2) * s), int((y + 0.9) * s)), 30, 4)
    cv2.line(img, (int((x - 0.2) * s), int((y + 0.9) * s)), (int((x + 1.4) * s), int((y - 1.0) * s)), 30, 4)
    reading = read_card(img, LAYOUT)
    speck, tick = reading.box_features[2], reading.box_features[5 + 2]
    assert speck[Feature.SPREAD] < reading.thresholds.stroke_spread_mark <= tick[Feature.SPREAD], (speck, tick)
    assert reading.responses[:3] == "?CA"
    darkness_only = read_card(img, LAYOUT, thresholds=replace(MarkThresholds(), stroke_spread_mark=0.0))
    assert darkness_only.responses[:3] == "CCA"
