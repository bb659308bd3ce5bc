"""A small generated store for the review station's tests: a few cards with known doubts.

`make_review_store` renders cards at 100 DPI (`tests.omr.reader_helpers`), puts a light
box (``?``) on some questions and a grid code number that disagrees with the barcode on
one card, scans them with ``omr scan --db`` in-process and returns where everything is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
from click.testing import CliRunner

from omr.cli import cli
from omr.layout import CardLayout, load_layout
from tests.omr.batch_helpers import code_number
from tests.omr.reader_helpers import fill_box, marked_card, random_answers

#: the key: ABCDE repeated; the pass mark 56 %
KEY = {
    "exam": "LEK",
    "session": "2026-09",
    "questions": 200,
    "versions": {"A": {"key": "ABCDE" * 40}},
    "pass_percent": 56,
}
#: a light fill at this grey reads '?'
DOUBT_GREY = 170


@dataclass(frozen=True)
class ReviewFixture:
    """The store and what is on its cards.

    db : the results store; key : the key file; folder : the scans
    doubts : source -> 1-based questions read '?'
    codes : source -> the true code number
    mismatch : the source whose grid code number disagrees with its barcode
    """

    db: Path
    key: Path
    folder: Path
    doubts: dict[str, tuple[int, ...]]
    codes: dict[str, str]
    mismatch: str


def doubtful_card(
    layout: CardLayout, seed: int, code: str, doubts: tuple[int, ...], grid_code: str | None = "same"
) -> tuple:
    """A card image whose ``doubts`` questions (1-based) are blank but for one light box."""
    answers = list(random_answers(layout, seed))
    for q in doubts:
        answers[q - 1] = "-"
    img = marked_card(layout, "".join(answers), code=code, dpi=100, grid_code=grid_code)
    centers = layout.answers.centers()
    for q in doubts:
        fill_box(img, centers[q - 1, 2], 100, value=DOUBT_GREY)
    return img, "".join(answers)


def make_review_store(tmp_path: Path, n: int = 3) -> ReviewFixture:
    """``n`` cards: card 0 has two '?', card 1 one '?', card 2 a code mismatch, others clean."""
    layout = load_layout()
    folder = tmp_path / "scans"
    folder.mkdir(parents=True)
    doubts, codes = {}, {}
    plan = {0: (5, 17), 1: (42,)}
    mismatch = ""
    for i in range(n):
        code = code_number(900 + i)
        grid = code_number(950) if i == 2 else "same"
        img, _ = doubtful_card(layout, 100 + i, code, plan.get(i, ()), grid_code=grid)
        path = folder / f"card-{i}.jpg"
        assert cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 92])
        doubts[str(path)], codes[str(path)] = plan.get(i, ()), code
        if i == 2:
            mismatch = str(path)
    key = tmp_path / "key.json"
    key.write_text(json.dumps(KEY))
    db = tmp_path / "results.sqlite"
    result = CliRunner().invoke(
        cli, ["scan", str(folder), "--key", str(key), "--db", str(db), "--workers", "1"]
    )
    assert result.exit_code == 0, result.output
    return ReviewFixture(db=db, key=key, folder=folder, doubts=doubts, codes=codes, mismatch=mismatch)
