"""`omr inspect` and `omr calibrate` through click's CliRunner."""

import json

import cv2
import pytest
from click.testing import CliRunner

from omr.cli import cli
from omr.layout import load_layout
from tests.omr.reader_helpers import marked_card, random_answers

LAYOUT = load_layout()


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scans")
    for i in range(3):
        answers = random_answers(LAYOUT, seed=i)
        cv2.imwrite(str(folder / f"card{i}.png"), marked_card(LAYOUT, answers, dpi=150))
    cv2.imwrite(str(folder / "blank.png"), marked_card(LAYOUT, "", dpi=150)[:300, :300] * 0 + 255)
    return folder


def test_inspect_writes_overlay_and_fills(scans, tmp_path):
    out, fills = tmp_path / "overlay.png", tmp_path / "fills.csv"
    result = CliRunner().invoke(
        cli, ["inspect", str(scans / "card0.png"), "--out", str(out), "--fills", str(fills)]
    )
    assert result.exit_code == 0, result.output
    assert "page 1: ok" in result.output
    assert "code number 123456782" in result.output
    overlay = cv2.imread(str(out))
    assert overlay is not None and overlay.ndim == 3
    lines = fills.read_text().splitlines()
    assert lines[0].startswith("part,index,option,fill,")
    assert len(lines) == 1 + LAYOUT.box_centers().shape[0]


def test_calibrate_learns_and_saves(scans, tmp_path):
    out = tmp_path / "t.json"
    result = CliRunner().invoke(cli, ["calibrate", str(scans), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "calibrated on 3 cards (1 skipped)" in result.output
    saved = json.loads(out.read_text())
    assert saved["source"] == "batch:3 cards"
    assert saved["fill_blank"] <= saved["fill_mark"]


def test_inspect_missing_page_is_a_usage_error(scans, tmp_path):
    result = CliRunner().invoke(
        cli, ["inspect", str(scans / "card0.png"), "--page", "2", "--out", str(tmp_path / "o.png")]
    )
    assert result.exit_code == 2
    assert "has no page 2" in result.output
