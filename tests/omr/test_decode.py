from unittest import mock

import cv2
import numpy as np
import pytest

import omr.decode as decode_module
from omr.decode import (
    decode_barcode,
    is_valid_code,
    luhn_check_digit,
    read_grid_digits,
    read_version,
    resolve_code_number,
)
from omr.detect import register_page
from omr.errors import BarcodeError
from omr.layout import load_layout
from omr.render import render_card

LAYOUT = load_layout()


@pytest.mark.parametrize(("body", "check"), [("12345678", "2"), ("7992739871", "3"), ("00000000", "0")])
def test_luhn(body, check):
    assert luhn_check_digit(body) == check
    assert is_valid_code(body + check, digits=len(body) + 1)
    wrong = str((int(check) + 1) % 10)
    assert not is_valid_code(body + wrong, digits=len(body) + 1)


def test_luhn_catches_every_single_digit_error():
    code = "123456782"
    for i in range(9):
        for d in "0123456789":
            if d != code[i]:
                assert not is_valid_code(code[:i] + d + code[i + 1 :])


@pytest.mark.parametrize(
    ("barcode", "grid", "code", "flags"),
    [
        ("123456782", "123456782", "123456782", ()),
        ("123456782", "---------", "123456782", ()),  # grid left empty: barcode rules
        ("123456782", "1234?6782", "123456782", ()),  # a doubtful grid digit does not contradict
        ("123456782", "123456783", "123456782", ("code_mismatch",)),
        ("123456782", "9--------", "123456782", ("code_mismatch",)),
        ("123456783", "123456783", "123456783", ("check_digit",)),  # never silently replaced
        (None, "123456782", "123456782", ("barcode_unreadable",)),
        (None, "123456783", "123456783", ("barcode_unreadable", "check_digit")),
        (None, "12345678-", "", ("barcode_unreadable", "code_unreadable")),
        ("ABC", "---------", "", ("check_digit", "code_unreadable")),
    ],
)
def test_resolve_code_number(barcode, grid, code, flags):
    result = resolve_code_number(barcode, grid, 9)
    assert result.code_number == code
    assert result.flags == flags


def test_grid_and_version_reading():
    states = np.zeros((9, 10), np.int8)
    states[np.arange(9), [1, 2, 3, 4, 5, 6, 7, 8, 2]] = 1
    assert read_grid_digits(states, "0123456789") == "123456782"
    assert read_version(np.array([0, 0, 1, 0], np.int8), "ABCD") == ("C", ())
    assert read_version(np.zeros(4, np.int8), "ABCD") == ("", ("version_missing",))
    assert read_version(np.array([1, 1, 0, 0], np.int8), "ABCD") == ("", ("version_multiple",))
    assert read_version(np.array([2, 0, 0, 0], np.int8), "ABCD") == ("", ("version_ambiguous",))


@pytest.mark.parametrize("dpi", [150, 200, 300])
def test_barcode_read_in_its_box(dpi):
    page = render_card(LAYOUT, "987654325", dpi=dpi)
    reg = register_page(page, LAYOUT)
    read = decode_barcode(page, reg.homography, LAYOUT, reg.px_per_mm)
    assert read is not None
    assert (read.data, read.where) == ("987654325", "box")


def test_missing_barcode_gives_none():
    page = render_card(LAYOUT, "987654325", dpi=150)
    reg = register_page(page, LAYOUT)
    x0, y0, x1, y1 = (np.array(LAYOUT.barcode.box_mm) * 150 / 25.4).astype(int)
    page[y0:y1, x0:x1] = 255
    assert decode_barcode(page, reg.homography, LAYOUT, reg.px_per_mm) is None


def test_missing_zbar_library_is_a_barcode_error():
    page = render_card(LAYOUT, "987654325", dpi=150)
    reg = register_page(page, LAYOUT)
    with mock.patch.dict("sys.modules", {"pyzbar": None}):
        with pytest.raises(BarcodeError, match="apt-get install libzbar0"):
            decode_barcode(page, reg.homography, LAYOUT, reg.px_per_mm)


def test_label_stuck_off_its_box_is_found_in_the_header():
    from dataclasses import replace

    from omr.render import draw_barcode, render_blank

    page = render_blank(LAYOUT, dpi=200)
    # the label is stuck 20 mm below its box, still above the answers
    x0, y0, x1, y1 = LAYOUT.barcode.box_mm
    moved = replace(LAYOUT, barcode=replace(LAYOUT.barcode, box_mm=(x0, y0 + 20, x1, y1 + 20)))
    draw_barcode(page, moved, "987654325", dpi=200)
    reg = register_page(page, LAYOUT)
    read = decode_barcode(page, reg.homography, LAYOUT, reg.px_per_mm)
    assert read is not None and (read.data, read.where) == ("987654325", "header")


def test_a_damaged_label_on_its_box_is_not_searched_for_in_the_header():
    """A sticker over half the bars: the label is on its box, so the header (~20 ms) is skipped."""
    page = render_card(LAYOUT, "987654325", dpi=200)
    reg = register_page(page, LAYOUT)
    x0, y0, x1, y1 = (np.array(LAYOUT.barcode.box_mm) * 200 / 25.4).astype(int)
    page[y0:y1, x0 + (x1 - x0) // 4 : x0 + 3 * (x1 - x0) // 4] = 245  # the middle half covered
    with mock.patch("omr.decode._decode_region", wraps=decode_module._decode_region) as spy:
        assert decode_barcode(page, reg.homography, LAYOUT, reg.px_per_mm) is None
    # the band averaged to four rows, the band, the whole box, the band at the scan's
    # resolution (averaged, as it is); not the header
    assert [call.args[2] for call in spy.call_args_list] == ["box"] * 5


def test_an_empty_box_sends_the_search_to_the_header():
    page = render_card(LAYOUT, "987654325", dpi=200)
    reg = register_page(page, LAYOUT)
    x0, y0, x1, y1 = (np.array(LAYOUT.barcode.box_mm) * 200 / 25.4).astype(int)
    page[y0:y1, x0:x1] = 250
    with mock.patch("omr.decode._decode_region", wraps=decode_module._decode_region) as spy:
        assert decode_barcode(page, reg.homography, LAYOUT, reg.px_per_mm) is None
    assert [call.args[2] for call in spy.call_args_list] == ["box"] * 5 + ["header"]


@pytest.mark.parametrize("dpi", [300, 400])
def test_a_label_with_thin_modules_is_read_at_the_scans_resolution(dpi):
    """0.19 mm modules are ~1 px at the usual 4-5 px/mm: read again at the scan's own
    (at 200 DPI they are 1.5 px there too: it depends on the label)."""
    from omr.render import RenderStyle

    page = render_card(LAYOUT, "987654325", dpi=dpi, style=RenderStyle(barcode_max_module_mm=0.19))
    page = cv2.GaussianBlur(page, (0, 0), 0.5 * dpi / 200)
    reg = register_page(page, LAYOUT)
    found = decode_barcode(page, reg.homography, LAYOUT, reg.px_per_mm)
    assert found is not None and found.data == "987654325" and found.where == "box"
