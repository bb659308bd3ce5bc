"""The bundled sample_scans/ batch, end to end through `omr scan`, against its truth."""

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from omr.cli import cli

SAMPLES = Path(__file__).resolve().parent.parent / "sample_scans"


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    out = tmp_path_factory.mktemp("samples") / "results.csv"
    result = CliRunner().invoke(
        cli, ["scan", str(SAMPLES), "--key", str(SAMPLES / "key.json"), "--out", str(out), "--workers", "1"]
    )
    assert result.exit_code == 1, result.output  # the truncated JPEG is an error row
    with out.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_every_sample_page_has_one_row(scanned):
    truth = json.loads((SAMPLES / "truth.json").read_text())
    pages = {(Path(r["source"]).name, int(r["page"])) for r in scanned}
    assert len(scanned) == len(pages) == len(truth)
    broken = [r for r in scanned if r["status"] == "error"]
    assert [Path(r["source"]).name for r in broken] == ["broken-scan.jpg"]
    assert broken[0]["flags"] == "image_unreadable"


def test_no_silent_error_on_the_samples(scanned):
    truth = {(t["source"], t["page"]): t for t in json.loads((SAMPLES / "truth.json").read_text())}
    for row in scanned:
        t = truth[(Path(row["source"]).name, int(row["page"]))]
        if row["status"] == "error":
            continue
        for q, (read, ok) in enumerate(zip(row["responses"], t["acceptable"], strict=True)):
            assert read in ok or read == "?", (row["source"], q + 1, read, ok)
        if row["status"] == "ok":
            assert row["code_number"] == t["code_number"]
            assert row["version"] == (t["version"] or "")
        for flag in t["expected_flags"]:
            assert flag in row["flags"].split(";"), (row["source"], flag)


def test_expected_results_has_the_columns_a_scan_writes(scanned):
    with (SAMPLES / "expected-results.csv").open(newline="", encoding="utf-8") as fh:
        expected = list(csv.DictReader(fh))
    assert list(expected[0]) == list(scanned[0])
    assert len(expected) == len(scanned)
    for row in expected:  # the per-field columns add up to the card's points
        if row["correct"]:
            fields = [c for c in row if c.startswith("correct:")]
            assert len(fields) == 10 and sum(int(row[c]) for c in fields) == int(row["correct"])
