"""Card layout: the printed geometry of a karta testowa, loaded from JSON.

Coordinates are millimetres on the printed page, origin top-left, x to the right,
y downwards; every position is the centre of a shape (see ``docs/spec.md`` §1).
Points are ``(x, y)``; arrays of points have shape ``(..., 2)``.

``CardLayout.from_dict`` validates a layout and reports the dotted path of the
offending field; everything below the loader works on the frozen dataclasses.
Nothing here assumes 200 questions, five options or particular letters: they all
come from the layout file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from omr.errors import LayoutError

__all__ = [
    "AnswerGrid",
    "BarcodeBox",
    "BubbleShape",
    "CardLayout",
    "CodeGrid",
    "DEFAULT_LAYOUT_NAME",
    "Markers",
    "PartRow",
    "VersionRow",
    "load_layout",
    "shipped_layouts",
]

DEFAULT_LAYOUT_NAME = "lek-ldek-v1"
MARKER_NAMES = ("top_left", "top_right", "bottom_right", "bottom_left")


@dataclass(frozen=True, slots=True)
class Markers:
    """Four solid squares; ``centers_mm`` in clockwise order TL, TR, BR, BL."""

    side_mm: float
    centers_mm: tuple[tuple[float, float], ...]
    hole_marker: str
    hole_side_mm: float
    quiet_zone_mm: float

    def centers(self) -> NDArray[np.float64]:
        """(4, 2) marker centres, clockwise from top-left."""
        return np.array(self.centers_mm, dtype=np.float64)

    def corners(self) -> NDArray[np.float64]:
        """(4, 4, 2) corners of each marker (clockwise from its own top-left)."""
        half = self.side_mm / 2
        offsets = np.array([[-half, -half], [half, -half], [half, half], [-half, half]])
        return self.centers()[:, None, :] + offsets[None, :, :]


@dataclass(frozen=True, slots=True)
class BubbleShape:
    width_mm: float
    height_mm: float
    corner_radius_mm: float
    outline_width_mm: float
    read_inset_mm: float

    @property
    def inner_width_mm(self) -> float:
        """Width of the judged area: inside the outline, shrunk by the read inset."""
        return self.width_mm - 2 * self.read_inset_mm

    @property
    def inner_height_mm(self) -> float:
        return self.height_mm - 2 * self.read_inset_mm


@dataclass(frozen=True, slots=True)
class BarcodeBox:
    symbology: str
    box_mm: tuple[float, float, float, float]
    text_below: bool


@dataclass(frozen=True, slots=True)
class CodeGrid:
    digits: int
    check_digit: str
    columns: int
    rows: int
    row_labels: str
    first_center_mm: tuple[float, float]
    column_pitch_mm: float
    row_pitch_mm: float

    def centers(self) -> NDArray[np.float64]:
        """(columns, rows, 2): centre of the bubble for digit row ``d`` in column ``j``."""
        j = np.arange(self.columns, dtype=np.float64)[:, None]
        d = np.arange(self.rows, dtype=np.float64)[None, :]
        x = self.first_center_mm[0] + j * self.column_pitch_mm + 0 * d
        y = self.first_center_mm[1] + d * self.row_pitch_mm + 0 * j
        return np.stack([x, y], axis=-1)


@dataclass(frozen=True, slots=True)
class VersionRow:
    labels: str
    first_center_mm: tuple[float, float]
    pitch_mm: float

    def centers(self) -> NDArray[np.float64]:
        """(len(labels), 2) version bubble centres."""
        k = np.arange(len(self.labels), dtype=np.float64)
        return np.stack(
            [self.first_center_mm[0] + k * self.pitch_mm, np.full_like(k, self.first_center_mm[1])],
            axis=-1,
        )


@dataclass(frozen=True, slots=True)
class PartRow:
    """The part number of a card of several (``parts`` in the layout JSON).

    A candidate's answers are spread over ``count`` cards of ``answers.questions``
    each: part ``p`` (1-based) holds card positions ``(p-1)*questions + 1 ..
    p*questions`` of the whole test.  Each card carries its part twice: the barcode
    holds the code number followed by the part digit, and a row of ``count`` bubbles
    labelled ``1``..``count`` has the card's own part printed filled.
    """

    count: int
    first_center_mm: tuple[float, float]
    pitch_mm: float

    @property
    def labels(self) -> str:
        """``"12"`` for two parts: the part numbers, one character each."""
        return "".join(str(p) for p in range(1, self.count + 1))

    def centers(self) -> NDArray[np.float64]:
        """(count, 2) part bubble centres."""
        k = np.arange(self.count, dtype=np.float64)
        return np.stack(
            [self.first_center_mm[0] + k * self.pitch_mm, np.full_like(k, self.first_center_mm[1])],
            axis=-1,
        )


@dataclass(frozen=True, slots=True)
class AnswerGrid:
    questions: int
    options: str
    blocks: int
    rows_per_block: int
    first_center_mm: tuple[float, float]
    block_pitch_mm: float
    option_pitch_mm: float
    row_pitch_mm: float

    def centers(self) -> NDArray[np.float64]:
        """(questions, options, 2): centre of option ``k`` of question ``q`` (0-based)."""
        q = np.arange(self.questions)[:, None]
        k = np.arange(len(self.options), dtype=np.float64)[None, :]
        block = (q // self.rows_per_block).astype(np.float64)
        row = (q % self.rows_per_block).astype(np.float64)
        x = self.first_center_mm[0] + block * self.block_pitch_mm + k * self.option_pitch_mm
        y = self.first_center_mm[1] + row * self.row_pitch_mm + 0 * k
        return np.stack([x, y], axis=-1)


@dataclass(frozen=True, slots=True)
class CardLayout:
    """A whole card: page, markers, bubbles, code number, version row and answers."""

    name: str
    title: str
    page_width_mm: float
    page_height_mm: float
    markers: Markers
    bubble: BubbleShape
    barcode: BarcodeBox
    code_grid: CodeGrid
    version: VersionRow
    answers: AnswerGrid
    source: str = "<dict>"
    parts: PartRow | None = None

    # -- derived geometry -------------------------------------------------------------
    @property
    def questions(self) -> int:
        return self.answers.questions

    @property
    def options(self) -> str:
        return self.answers.options

    @property
    def part_count(self) -> int:
        """How many cards make one candidate's test (1 without a ``parts`` section)."""
        return self.parts.count if self.parts is not None else 1

    @property
    def total_questions(self) -> int:
        """Questions of the whole test: a card's questions times its parts."""
        return self.answers.questions * self.part_count

    def box_centers(self) -> NDArray[np.float64]:
        """(N, 2) centres of every bubble: answers (row-major), code grid, version, part.

        The order is fixed: ``questions*options`` answer boxes, then ``columns*rows``
        code boxes (column-major: column j, digit d), then the version boxes, then (on
        a card of several parts) the part boxes.  ``box_slices`` gives the ranges.
        """
        rows = [
            self.answers.centers().reshape(-1, 2),
            self.code_grid.centers().reshape(-1, 2),
            self.version.centers(),
        ]
        if self.parts is not None:
            rows.append(self.parts.centers())
        return np.concatenate(rows)

    def box_slices(self) -> dict[str, slice]:
        """Ranges of ``box_centers`` rows: ``answers``, ``code``, ``version`` (and ``part``)."""
        n_answers = self.answers.questions * len(self.answers.options)
        n_code = self.code_grid.columns * self.code_grid.rows
        end_version = n_answers + n_code + len(self.version.labels)
        slices = {
            "answers": slice(0, n_answers),
            "code": slice(n_answers, n_answers + n_code),
            "version": slice(n_answers + n_code, end_version),
        }
        if self.parts is not None:
            slices["part"] = slice(end_version, end_version + self.parts.count)
        return slices

    # -- loading ----------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>") -> CardLayout:
        """Build and validate a layout from its JSON form.

        Raises
        ------
        LayoutError
            naming ``source`` and the dotted path of the first broken field.
        """
        reader = _Reader(data, source)
        units = reader.get("units", default="mm")
        if units != "mm":
            raise reader.fail("units", f"only millimetres ('mm') are supported, got {units!r}")
        markers = Markers(
            side_mm=reader.pos_number("markers.side"),
            centers_mm=tuple(reader.point(f"markers.centers.{name}") for name in MARKER_NAMES),
            hole_marker=reader.string("markers.orientation_hole.marker"),
            hole_side_mm=reader.pos_number("markers.orientation_hole.side"),
            quiet_zone_mm=reader.number("markers.quiet_zone", minimum=0.0),
        )
        bubble = BubbleShape(
            width_mm=reader.pos_number("bubble.width"),
            height_mm=reader.pos_number("bubble.height"),
            corner_radius_mm=reader.number("bubble.corner_radius", minimum=0.0),
            outline_width_mm=reader.number("bubble.outline_width", minimum=0.0),
            read_inset_mm=reader.number("bubble.read_inset", minimum=0.0),
        )
        box = reader.numbers("code_number.barcode.box", 4)
        barcode = BarcodeBox(
            symbology=reader.string("code_number.barcode.symbology"),
            box_mm=(box[0], box[1], box[2], box[3]),
            text_below=bool(reader.get("code_number.barcode.text_below", default=True)),
        )
        code_grid = CodeGrid(
            digits=reader.pos_int("code_number.digits"),
            check_digit=reader.string("code_number.check_digit"),
            columns=reader.pos_int("code_number.grid.columns"),
            rows=reader.pos_int("code_number.grid.rows"),
            row_labels=reader.string("code_number.grid.row_labels"),
            first_center_mm=reader.point("code_number.grid.first_center"),
            column_pitch_mm=reader.pos_number("code_number.grid.column_pitch"),
            row_pitch_mm=reader.pos_number("code_number.grid.row_pitch"),
        )
        version = VersionRow(
            labels=reader.string("version.labels"),
            first_center_mm=reader.point("version.first_center"),
            pitch_mm=reader.pos_number("version.pitch"),
        )
        answers = AnswerGrid(
            questions=reader.pos_int("answers.questions"),
            options=reader.string("answers.options"),
            blocks=reader.pos_int("answers.blocks"),
            rows_per_block=reader.pos_int("answers.rows_per_block"),
            first_center_mm=reader.point("answers.first_center"),
            block_pitch_mm=reader.pos_number("answers.block_pitch"),
            option_pitch_mm=reader.pos_number("answers.option_pitch"),
            row_pitch_mm=reader.pos_number("answers.row_pitch"),
        )
        parts = None
        if reader.get("parts", default=None) is not None:
            reader.obj("parts")
            parts = PartRow(
                count=reader.pos_int("parts.count"),
                first_center_mm=reader.point("parts.row.first_center"),
                pitch_mm=reader.pos_number("parts.row.pitch"),
            )
            if reader.get("parts.barcode", default="code_then_part") != "code_then_part":
                raise reader.fail("parts.barcode", "only 'code_then_part' (the code number, then the "
                                  f"part digit) is supported, got {reader.get('parts.barcode')!r}")
        layout = cls(
            name=reader.string("name"),
            title=str(reader.get("title", default="")),
            page_width_mm=reader.pos_number("page.width"),
            page_height_mm=reader.pos_number("page.height"),
            markers=markers,
            bubble=bubble,
            barcode=barcode,
            code_grid=code_grid,
            version=version,
            answers=answers,
            source=source,
            parts=parts,
        )
        _validate(layout)
        return layout

    @classmethod
    def from_json(cls, path: str | Path) -> CardLayout:
        """Load a layout file.  Raises `LayoutError` for unreadable or invalid files."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as err:
            raise LayoutError(f"cannot read layout {path}: {err.strerror}") from err
        except json.JSONDecodeError as err:
            raise LayoutError(
                f"layout {path} is not valid JSON: line {err.lineno} column {err.colno}: {err.msg}"
            ) from err
        return cls.from_dict(data, source=str(path))


def shipped_layouts() -> tuple[str, ...]:
    """Names of the layouts shipped in ``omr/layouts`` (``lek-ldek-v1``, ``cem-100``, ...)."""
    files = resources.files("omr.layouts").iterdir()
    return tuple(sorted(f.name[: -len(".json")] for f in files if f.name.endswith(".json")))


def load_layout(path: str | Path | None = None) -> CardLayout:
    """A shipped layout by name (``cem-100``), a layout file, or ``lek-ldek-v1`` when None.

    A string that names a shipped layout is that layout; anything else is a path.

    Raises
    ------
    LayoutError
        for a name that is neither shipped nor an existing file, and for broken files.
    """
    name = DEFAULT_LAYOUT_NAME if path is None else str(path)
    if name in shipped_layouts():
        text = resources.files("omr.layouts").joinpath(f"{name}.json").read_text("utf-8")
        return CardLayout.from_dict(json.loads(text), source=f"<builtin {name}>")
    if not Path(name).exists() and not name.lower().endswith(".json"):
        raise LayoutError(
            f"layout {name!r}: no such shipped layout and no such file; use one of "
            f"{', '.join(shipped_layouts())} ('omr layouts' lists them) or a layout JSON file"
        )
    return CardLayout.from_json(name)


# -- validation ------------------------------------------------------------------------


class _Reader:
    """Typed access to nested JSON with dotted-path error messages."""

    _MISSING = object()

    def __init__(self, data: Any, source: str) -> None:
        if not isinstance(data, dict):
            raise LayoutError(f"layout {source}: expected a JSON object, got {type(data).__name__}")
        self.data = data
        self.source = source

    def fail(self, path: str, message: str) -> LayoutError:
        return LayoutError(f"layout {self.source}: {path}: {message}")

    def get(self, path: str, default: Any = _MISSING) -> Any:
        node: Any = self.data
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                if default is not self._MISSING:
                    return default
                raise self.fail(path, "missing field")
            node = node[part]
        return node

    def obj(self, path: str) -> dict[str, Any]:
        value = self.get(path)
        if not isinstance(value, dict):
            raise self.fail(path, f"expected an object, got {type(value).__name__}")
        return value

    def string(self, path: str) -> str:
        value = self.get(path)
        if not isinstance(value, str) or not value:
            raise self.fail(path, f"expected a non-empty string, got {value!r}")
        return value

    def number(self, path: str, minimum: float | None = None) -> float:
        value = self.get(path)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(path, f"expected a number, got {value!r}")
        if minimum is not None and value < minimum:
            raise self.fail(path, f"must be >= {minimum}, got {value}")
        return float(value)

    def pos_number(self, path: str) -> float:
        value = self.number(path)
        if value <= 0:
            raise self.fail(path, f"must be > 0, got {value}")
        return value

    def pos_int(self, path: str) -> int:
        value = self.get(path)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise self.fail(path, f"expected a positive integer, got {value!r}")
        return value

    def numbers(self, path: str, count: int) -> list[float]:
        value = self.get(path)
        if (
            not isinstance(value, list)
            or len(value) != count
            or any(isinstance(v, bool) or not isinstance(v, int | float) for v in value)
        ):
            raise self.fail(path, f"expected {count} numbers, got {value!r}")
        return [float(v) for v in value]

    def point(self, path: str) -> tuple[float, float]:
        x, y = self.numbers(path, 2)
        return (x, y)


def _validate(layout: CardLayout) -> None:
    """Cross-field rules: counts agree, every shape is on the page, nothing overlaps."""
    src = layout.source

    def fail(path: str, message: str) -> LayoutError:
        return LayoutError(f"layout {src}: {path}: {message}")

    m = layout.markers
    if m.hole_marker not in MARKER_NAMES:
        raise fail("markers.orientation_hole.marker", f"must be one of {MARKER_NAMES}, got {m.hole_marker!r}")
    if m.hole_marker != "top_left":
        raise fail("markers.orientation_hole.marker", "only 'top_left' is supported by this reader")
    if m.hole_side_mm >= m.side_mm * 0.8:
        raise fail(
            "markers.orientation_hole.side",
            f"{m.hole_side_mm} leaves no ink around the hole in a {m.side_mm} mm marker",
        )

    a = layout.answers
    if len(set(a.options)) != len(a.options):
        raise fail("answers.options", f"letters repeat in {a.options!r}")
    if a.blocks * a.rows_per_block < a.questions:
        raise fail(
            "answers.blocks",
            f"{a.blocks} blocks x {a.rows_per_block} rows hold {a.blocks * a.rows_per_block} "
            f"questions, fewer than answers.questions = {a.questions}",
        )
    g = layout.code_grid
    if g.check_digit != "luhn":
        raise fail("code_number.check_digit", f"only 'luhn' is supported, got {g.check_digit!r}")
    if g.columns != g.digits:
        raise fail("code_number.grid.columns", f"{g.columns} columns for {g.digits} digits")
    if len(g.row_labels) != g.rows or not g.row_labels.isdigit():
        raise fail("code_number.grid.row_labels", f"need {g.rows} digits, got {g.row_labels!r}")
    if len(set(layout.version.labels)) != len(layout.version.labels):
        raise fail("version.labels", f"letters repeat in {layout.version.labels!r}")
    if layout.parts is not None and not 2 <= layout.parts.count <= 9:
        raise fail("parts.count", f"a card of parts has 2 to 9 of them (one digit), got {layout.parts.count}")
    b = layout.bubble
    if b.inner_width_mm <= 0 or b.inner_height_mm <= 0:
        raise fail(
            "bubble.read_inset",
            f"{b.read_inset_mm} mm leaves no area inside a {b.width_mm}x{b.height_mm} mm box",
        )

    width, height = layout.page_width_mm, layout.page_height_mm
    # every shape as an axis-aligned rectangle [x0, y0, x1, y1] with its dotted name
    rects: list[tuple[str, NDArray[np.float64]]] = []
    half_box = np.array([b.width_mm / 2, b.height_mm / 2])
    for name, centers in (
        ("answers", a.centers().reshape(-1, 2)),
        ("code_number.grid", g.centers().reshape(-1, 2)),
        ("version", layout.version.centers()),
        *((("parts.row", layout.parts.centers()),) if layout.parts is not None else ()),
    ):
        rects.append((name, np.concatenate([centers - half_box, centers + half_box], axis=1)))
    rects.append(("code_number.barcode.box", np.array([layout.barcode.box_mm])))
    qz = m.quiet_zone_mm + m.side_mm / 2
    marker_rects = np.concatenate([m.centers() - qz, m.centers() + qz], axis=1)

    for name, r in rects:
        off = (r[:, 0] < 0) | (r[:, 1] < 0) | (r[:, 2] > width) | (r[:, 3] > height)
        if off.any():
            i = int(np.argmax(off))
            raise fail(
                name, f"shape {i} at {r[i].round(2).tolist()} mm lies off the {width}x{height} mm page"
            )
    half_marker = m.side_mm / 2
    mc = m.centers()
    if (
        (mc - half_marker < 0).any()
        or (mc[:, 0] + half_marker > width).any()
        or (mc[:, 1] + half_marker > height).any()
    ):
        raise fail("markers.centers", "a marker lies off the page")

    all_rects = np.concatenate([r for _, r in rects])
    owners = np.concatenate([[name] * len(r) for name, r in rects])
    overlap = _overlaps(all_rects, all_rects)
    np.fill_diagonal(overlap, False)
    if overlap.any():
        i, j = np.argwhere(overlap)[0]
        raise fail(
            str(owners[i]),
            f"box at {all_rects[i].round(2).tolist()} overlaps {owners[j]} box at "
            f"{all_rects[j].round(2).tolist()} mm",
        )
    in_quiet = _overlaps(all_rects, marker_rects)
    if in_quiet.any():
        i, k = np.argwhere(in_quiet)[0]
        raise fail(
            str(owners[i]),
            f"box at {all_rects[i].round(2).tolist()} mm is inside the quiet zone of the "
            f"{MARKER_NAMES[k]} marker",
        )


def _overlaps(r1: NDArray[np.float64], r2: NDArray[np.float64]) -> NDArray[np.bool_]:
    """(N, M) whether rectangles ``[x0, y0, x1, y1]`` of r1 and r2 intersect with area."""
    return (
        (r1[:, None, 0] < r2[None, :, 2])
        & (r2[None, :, 0] < r1[:, None, 2])
        & (r1[:, None, 1] < r2[None, :, 3])
        & (r2[None, :, 1] < r1[:, None, 3])
    )
