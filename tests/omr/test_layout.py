"""Card layouts: the shipped one, other sizes written as JSON, and broken ones."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from omr.errors import LayoutError
from omr.layout import CardLayout, load_layout

SHIPPED = json.loads(
    resources.files("omr.layouts").joinpath("lek-ldek-v1.json").read_text("utf-8")
)


def _edit(path: str, value: object = None, *, delete: bool = False) -> dict:
    """A deep copy of the shipped layout with the dotted ``path`` replaced or deleted."""
    data = copy.deepcopy(SHIPPED)
    *parents, last = path.split(".")
    node = data
    for part in parents:
        node = node[part]
    if delete:
        del node[last]
    else:
        node[last] = value
    return data


def _write(tmp_path: Path, data: dict, name: str = "card.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_shipped_layout_is_the_documented_one() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "card-lek-ldek-v1.json"
    assert docs.is_file(), f"{docs} is the documented copy of the shipped layout"
    assert json.loads(docs.read_text(encoding="utf-8")) == SHIPPED


def test_shipped_layout_geometry_follows_the_spec_formulas() -> None:
    lay = load_layout()
    assert (lay.questions, lay.options, lay.name) == (200, "ABCDE", "lek-ldek-v1")
    a = lay.answers.centers()
    assert a.shape == (200, 5, 2)
    # question q (1-based), option k: block (q-1)//40, row (q-1)%40
    for q, k in [(1, 0), (40, 4), (41, 2), (133, 3), (200, 4)]:
        block, row = (q - 1) // 40, (q - 1) % 40
        assert tuple(a[q - 1, k]) == (30.0 + 36.0 * block + 5.0 * k, 80.0 + 5.0 * row)
    g = lay.code_grid.centers()
    assert g.shape == (9, 10, 2) and tuple(g[8, 9]) == (24.0 + 8 * 5.5, 30.0 + 9 * 4.2)
    assert lay.version.centers().tolist() == [[84.0, 30.0], [90.0, 30.0], [96.0, 30.0],
                                              [102.0, 30.0]]
    assert lay.markers.centers().tolist() == [[10, 10], [200, 10], [200, 287], [10, 287]]
    corners = lay.markers.corners()
    assert corners.shape == (4, 4, 2) and corners[0, 0].tolist() == [7.0, 7.0]


def test_box_centers_order_and_slices() -> None:
    lay = load_layout()
    boxes = lay.box_centers()
    sl = lay.box_slices()
    assert boxes.shape == (1000 + 90 + 4, 2)
    assert (sl["answers"], sl["code"], sl["version"]) == (slice(0, 1000), slice(1000, 1090),
                                                         slice(1090, 1094))
    assert np.array_equal(boxes[sl["answers"]], lay.answers.centers().reshape(-1, 2))
    # the code part is column-major: column j, digit d at 1000 + j*10 + d
    assert tuple(boxes[1000 + 3 * 10 + 7]) == (24.0 + 3 * 5.5, 30.0 + 7 * 4.2)
    assert np.array_equal(boxes[sl["version"]], lay.version.centers())


def test_layout_objects_are_frozen() -> None:
    lay = load_layout()
    with pytest.raises(dataclasses.FrozenInstanceError):
        lay.answers.questions = 100  # type: ignore[misc]


@pytest.mark.parametrize(
    ("questions", "options", "blocks", "rows"),
    [(100, "ABCDE", 3, 34), (120, "ABCD", 4, 30), (60, "ABCDEF", 2, 30)],
)
def test_other_card_sizes_load_from_json(tmp_path, questions, options, blocks, rows) -> None:
    data = copy.deepcopy(SHIPPED)
    data["name"] = f"test-{questions}"
    data["answers"].update(questions=questions, options=options, blocks=blocks,
                           rows_per_block=rows)
    lay = load_layout(_write(tmp_path, data))
    assert lay.source.endswith("card.json") and lay.name == f"test-{questions}"
    assert lay.answers.centers().shape == (questions, len(options), 2)
    assert lay.box_centers().shape == (questions * len(options) + 90 + 4, 2)
    assert lay.box_slices()["answers"] == slice(0, questions * len(options))
    last_block, last_row = (questions - 1) // rows, (questions - 1) % rows
    x0, y0 = SHIPPED["answers"]["first_center"]
    assert tuple(lay.answers.centers()[-1, 0]) == (x0 + 36.0 * last_block, y0 + 5.0 * last_row)


@pytest.mark.parametrize(
    "path",
    ["name", "page.width", "markers.side", "markers.centers.bottom_left",
     "markers.orientation_hole.side", "bubble.height", "code_number.barcode.box",
     "code_number.grid.row_pitch", "version.labels", "answers.first_center", "answers.questions"],
)
def test_missing_field_names_its_dotted_path(path: str) -> None:
    with pytest.raises(LayoutError, match=rf"layout <t>: {re.escape(path)}: missing field"):
        CardLayout.from_dict(_edit(path, delete=True), source="<t>")


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("answers.questions", "200", "expected a positive integer, got '200'"),
        ("answers.questions", 0, "expected a positive integer, got 0"),
        ("answers.option_pitch", True, "expected a number, got True"),
        ("bubble.width", -4, "must be > 0, got -4"),
        ("answers.first_center", [30, 80, 1], r"expected 2 numbers, got \[30, 80, 1\]"),
        ("answers.options", "ABCA", "letters repeat in 'ABCA'"),
        ("version.labels", "", "expected a non-empty string"),
        ("code_number.grid.row_labels", "012345678", "need 10 digits, got '012345678'"),
        ("code_number.check_digit", "mod11", "only 'luhn' is supported"),
        ("code_number.grid.columns", 8, "8 columns for 9 digits"),
        ("markers.orientation_hole.marker", "top_right", "only 'top_left' is supported"),
        ("markers.orientation_hole.marker", "middle", "must be one of"),
        ("markers.orientation_hole.side", 5.0, "leaves no ink around the hole"),
        ("bubble.read_inset", 1.5, "leaves no area inside"),
        ("answers.blocks", 3, "3 blocks x 40 rows hold 120 questions, fewer than answers.questions"),
        ("units", "in", "only millimetres"),
    ],
)
def test_bad_values_name_path_value_and_rule(path: str, value: object, message: str) -> None:
    with pytest.raises(LayoutError, match=rf"{re.escape(path)}: .*{message}"):
        CardLayout.from_dict(_edit(path, value), source="<t>")


def test_overlapping_boxes_are_rejected() -> None:
    with pytest.raises(LayoutError, match=r"answers: box at \[.*\] overlaps answers box at"):
        CardLayout.from_dict(_edit("answers.option_pitch", 3.5))
    # the code grid running into the version row
    with pytest.raises(LayoutError, match="overlaps version box"):
        CardLayout.from_dict(_edit("code_number.grid.column_pitch", 8.0))


def test_boxes_off_the_page_are_rejected() -> None:
    with pytest.raises(LayoutError, match=r"answers: shape 0 at \[-1\.0, .*lies off the 210\.0x297\.0"):
        CardLayout.from_dict(_edit("answers.first_center", [1.0, 80.0]))
    with pytest.raises(LayoutError, match="answers: shape .* lies off"):
        CardLayout.from_dict(_edit("answers.row_pitch", 6.0))  # 40 rows no longer fit
    with pytest.raises(LayoutError, match="code_number.barcode.box: .* lies off"):
        CardLayout.from_dict(_edit("code_number.barcode.box", [150, 20, 215, 36]))
    with pytest.raises(LayoutError, match="markers.centers: a marker lies off the page"):
        CardLayout.from_dict(_edit("markers.centers.bottom_right", [208.0, 287.0]))


def test_box_in_a_marker_quiet_zone_is_rejected() -> None:
    with pytest.raises(LayoutError, match="version: box at .* inside the quiet zone of the top_left"):
        CardLayout.from_dict(_edit("version.first_center", [17.0, 14.0]))
    with pytest.raises(LayoutError, match="barcode.box: box at .* quiet zone of the top_right"):
        CardLayout.from_dict(_edit("code_number.barcode.box", [110.0, 12.0, 198.0, 30.0]))


def test_unreadable_files(tmp_path) -> None:
    with pytest.raises(LayoutError, match=r"cannot read layout .*nope\.json"):
        load_layout(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x",\n  "page": }', encoding="utf-8")
    with pytest.raises(LayoutError, match=r"bad\.json is not valid JSON: line 2 column"):
        load_layout(bad)
    arr = _write(tmp_path, [1, 2], "list.json")  # type: ignore[arg-type]
    with pytest.raises(LayoutError, match="expected a JSON object, got list"):
        load_layout(arr)


# -- the shipped CEM layouts, by name; cards of several parts --------------------------

CEM = json.loads(resources.files("omr.layouts").joinpath("cem-100.json").read_text("utf-8"))


def _cem(path: str, value: object = None, *, delete: bool = False) -> dict:
    data = copy.deepcopy(CEM)
    *parents, last = path.split(".")
    node = data
    for part in parents:
        node = node[part]
    if delete:
        del node[last]
    else:
        node[last] = value
    return data


def test_shipped_layouts_load_by_name() -> None:
    from omr.layout import shipped_layouts

    assert shipped_layouts() == ("cem-100", "lek-ldek-v1", "pes-120")
    summary = {n: (load_layout(n).questions, load_layout(n).part_count, load_layout(n).total_questions)
               for n in shipped_layouts()}
    assert summary == {"cem-100": (100, 2, 200), "lek-ldek-v1": (200, 1, 200), "pes-120": (120, 1, 120)}
    assert load_layout("lek-ldek-v1") == load_layout()
    assert load_layout("pes-120").parts is None and load_layout("pes-120").options == "ABCDE"


def test_a_layout_name_that_is_neither_shipped_nor_a_file_lists_the_names() -> None:
    with pytest.raises(LayoutError, match=r"'cem-101': no such shipped layout.*cem-100, lek-ldek-v1, pes-120"):
        load_layout("cem-101")


def test_a_path_still_loads(tmp_path) -> None:
    assert load_layout(_write(tmp_path, CEM)) == dataclasses.replace(load_layout("cem-100"),
                                                                    source=str(tmp_path / "card.json"))


def test_the_part_row_comes_after_the_version_row() -> None:
    lay = load_layout("cem-100")
    sl = lay.box_slices()
    assert (sl["version"], sl["part"]) == (slice(590, 594), slice(594, 596))
    assert lay.box_centers()[sl["part"]].tolist() == [[84.0, 44.0], [90.0, 44.0]]
    assert lay.parts is not None and lay.parts.labels == "12"
    assert "part" not in load_layout().box_slices()  # the 200-question card's boxes are as before


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("parts.count", 1, "2 to 9"),
        ("parts.count", 10, "2 to 9"),
        ("parts.count", "two", "positive integer"),
        ("parts.row.pitch", 0, "must be > 0"),
        ("parts.row.first_center", [84.0], "expected 2 numbers"),
        ("parts.barcode", "part_then_code", "only 'code_then_part'"),
        ("parts", [2], "expected an object"),
    ],
)
def test_broken_parts_name_their_dotted_path(path: str, value: object, message: str) -> None:
    with pytest.raises(LayoutError, match=rf"layout <t>: {re.escape(path)}: .*{message}"):
        CardLayout.from_dict(_cem(path, value), source="<t>")


def test_missing_part_row_names_its_path() -> None:
    with pytest.raises(LayoutError, match=r"layout <t>: parts\.row\.pitch: missing field"):
        CardLayout.from_dict(_cem("parts.row.pitch", delete=True), source="<t>")


def test_a_part_row_on_the_version_row_is_an_overlap() -> None:
    with pytest.raises(LayoutError, match=r"version: box at .* overlaps parts\.row box"):
        CardLayout.from_dict(_cem("parts.row.first_center", [84.0, 30.0]), source="<t>")
