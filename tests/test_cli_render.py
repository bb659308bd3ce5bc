"""`omr render` and `omr synth`: thin commands over omr.render / omr.synth."""

from __future__ import annotations

import json

from click.testing import CliRunner
from PIL import Image

from omr.cli import cli
from omr.decode import is_valid_code


def test_render_png_cards_with_random_valid_codes(tmp_path) -> None:
    result = CliRunner().invoke(cli, ["render", "--count", "2", "--seed", "4", "--dpi", "60",
                                      "--format", "png", "--out", str(tmp_path / "cards")])
    assert result.exit_code == 0, result.output
    files = sorted((tmp_path / "cards").glob("card-*.png"))
    assert len(files) == 2
    assert all(is_valid_code(f.stem.removeprefix("card-")) for f in files)
    with Image.open(files[0]) as im:
        assert im.size == (round(210 * 60 / 25.4), round(297 * 60 / 25.4))
    assert result.output.splitlines()[-1] == f"2 cards at 60 DPI written to {tmp_path / 'cards'}"


def test_render_pdf_from_codes(tmp_path) -> None:
    out = tmp_path / "print.pdf"
    result = CliRunner().invoke(cli, ["render", "--codes", "123456782, 000000000", "--dpi", "60",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"%PDF")


def test_render_usage_errors(tmp_path) -> None:
    runner = CliRunner()
    bad_luhn = runner.invoke(cli, ["render", "--codes", "123456789", "--out", str(tmp_path)])
    assert bad_luhn.exit_code == 2 and "Luhn check digit (would end in 2)" in bad_luhn.output
    short = runner.invoke(cli, ["render", "--codes", "12345", "--out", str(tmp_path)])
    assert short.exit_code == 2 and "not 9 digits" in short.output
    neither = runner.invoke(cli, ["render", "--out", str(tmp_path)])
    assert neither.exit_code == 2 and "either --codes or --count" in neither.output
    assert not list(tmp_path.iterdir())


def test_synth_writes_images_and_truth(tmp_path) -> None:
    out = tmp_path / "scans"
    result = CliRunner().invoke(cli, ["synth", "--count", "3", "--seed", "2", "--out", str(out),
                                      "--formats", "png,tiff", "--damage", "heavy", "--dpi", "80",
                                      "--pages-per-file", "2"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        str(out / "card-0001.png"), str(out / "card-0002.tif"),
        f"3 cards in 2 files; truth in {out / 'truth.json'}",
    ]  # fmt: skip
    truth = json.loads((out / "truth.json").read_text())
    assert [(t["source"], t["page"], t["dpi"]) for t in truth] == [
        ("card-0001.png", 1, 80.0), ("card-0002.tif", 1, 80.0), ("card-0002.tif", 2, 80.0)]


def test_synth_rejects_unknown_format(tmp_path) -> None:
    result = CliRunner().invoke(cli, ["synth", "--count", "1", "--out", str(tmp_path / "x"),
                                      "--formats", "jpg,bmp"])
    assert result.exit_code == 2 and "bmp: use some of jpg, png, tiff, pdf" in result.output
