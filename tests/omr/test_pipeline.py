import pickle
from unittest import mock

import cv2
import numpy as np
import pytest

from omr.layout import load_layout
from omr.pages import iter_pages
from omr.pipeline import INTERNAL_ERROR, PageOutcome, process_page
from tests.omr.batch_helpers import blank_page, code_number, write_cards
from tests.omr.reader_helpers import marked_card, random_answers


@pytest.fixture(scope="module")
def layout():
    return load_layout()


def only_ref(path):
    (ref,) = list(iter_pages([str(path)]))
    return ref


def test_a_card_becomes_an_ok_row_with_its_reading(tmp_path, layout):
    (path,) = write_cards(tmp_path, 1, layout, seed=3)
    outcome = process_page(only_ref(path), layout)
    row = outcome.row
    assert (row.source, row.page, row.status) == (str(path), 1, "ok")
    assert row.responses == random_answers(layout, 3000)
    assert row.code_number == code_number(3000)
    assert row.version == "A" and row.flags == ()
    assert row.correct is None  # scored by the writer, not here
    assert outcome.reading is not None and outcome.reading.box_features.shape[0] == len(layout.box_centers())
    t = outcome.timings
    assert 0 < t.load_s < t.total_s and 0 < t.read_s < t.total_s
    assert outcome.error_type == outcome.message == ""


def test_outcomes_pickle_for_worker_processes(tmp_path, layout):
    (path,) = write_cards(tmp_path, 1, layout)
    outcome = process_page(only_ref(path), layout)
    back = pickle.loads(pickle.dumps(outcome))
    assert isinstance(back, PageOutcome) and back.row == outcome.row
    np.testing.assert_array_equal(back.reading.box_features, outcome.reading.box_features)


def test_a_page_without_a_card_is_an_error_row(tmp_path, layout):
    outcome = process_page(only_ref(blank_page(tmp_path / "blank.png")), layout)
    assert outcome.row.status == "error"
    assert outcome.row.flags in (("page_not_found",), ("markers_not_found",))
    assert outcome.error_type in ("PageNotFoundError", "MarkerNotFoundError")
    assert outcome.message and outcome.reading is None
    assert outcome.row.responses == "" and outcome.row.correct is None


def test_an_unreadable_file_is_an_error_row(tmp_path, layout):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff not really")
    outcome = process_page(only_ref(bad), layout)
    assert outcome.row.flags == ("image_unreadable",) and outcome.error_type == "ImageReadError"
    assert "bad.jpg" in outcome.message
    assert outcome.timings.read_s == 0.0 or outcome.timings.read_s < 0.01


def test_a_reader_bug_costs_one_page_not_the_batch(tmp_path, layout):
    (path,) = write_cards(tmp_path, 1, layout)
    bug = ZeroDivisionError("division by zero")
    with mock.patch("omr.pipeline.read_card", autospec=True, side_effect=bug):
        outcome = process_page(only_ref(path), layout)
    assert outcome.row.status == "error" and outcome.row.flags == (INTERNAL_ERROR,)
    assert outcome.error_type == "ZeroDivisionError"
    assert outcome.message.startswith(f"ZeroDivisionError while reading {path} page 1")
    assert outcome.timings.load_s > 0


def _photo(layout):
    rng = np.random.default_rng(5)
    small = rng.integers(0, 256, size=(30, 20), dtype=np.uint8)
    return cv2.GaussianBlur(cv2.resize(small, (827, 1169), interpolation=cv2.INTER_CUBIC), (0, 0), 3)


def _cut_card(layout):
    img = marked_card(layout, random_answers(layout, 1), dpi=100)
    return img[: int(img.shape[0] * 0.9)]  # the bottom markers cut off


@pytest.mark.parametrize("make", [_photo, _cut_card], ids=["photo", "marker-cut-off"])
def test_pages_that_are_not_a_whole_card_are_one_error_row_each(tmp_path, layout, make):
    path = tmp_path / "page.png"
    assert cv2.imwrite(str(path), make(layout))
    outcome = process_page(only_ref(path), layout)
    assert outcome.row.status == "error"
    assert outcome.row.flags in (("page_not_found",), ("markers_not_found",))
    assert outcome.message
