"""The CEM card formats end to end: layouts by name, cards of two parts scanned, joined per candidate."""

import csv
from decimal import Decimal
import json

import pytest
from click.testing import CliRunner

from omr.cli import cli
from omr.errors import LayoutError
from omr.layout import load_layout
from omr.synth import write_dataset

JOIN_FLAGS = ("part_missing", "part_duplicate", "version_mismatch")
CLEAN = {"barcode_covered": 0.0, "barcode_stroke": 0.0, "barcode_smudge": 0.0, "version_none": 0.0,
         "version_two": 0.0}


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def run(args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """Ten shuffled cem-100 pages: complete candidates, a missing part, a part twice, two versions."""
    folder = tmp_path_factory.mktemp("cem")
    write_dataset(folder / "scans", 10, seed=1, layout=load_layout("cem-100"),
                  damage="none", dpi=150, candidate_mix={"missing": 0.25, "duplicate": 0.25, "versions": 0.25},
                  **CLEAN)
    key = folder / "key.json"
    key.write_text(json.dumps({"exam": "LEK", "questions": 200, "pass_percent": 56,
                               "versions": {v: {"key": "ABCDE" * 40} for v in "ABCD"}}))
    return folder


def test_synth_truth_covers_every_anomaly(batch):
    truth = json.loads((batch / "scans" / "candidates.json").read_text())
    flags = {f.split(":")[0] for c in truth for f in c["expected_flags"]}
    assert flags == set(JOIN_FLAGS)
    assert any(not c["expected_flags"] for c in truth)
    pages = json.loads((batch / "scans" / "truth.json").read_text())
    assert [p["part"] for p in pages] != sorted(p["part"] for p in pages)  # mixed order


def test_scan_joins_the_parts_of_each_candidate(batch, tmp_path):
    out = run(["scan", batch / "scans", "--key", batch / "key.json", "--layout", "cem-100", "--workers", 1,
               "--db", tmp_path / "r.sqlite", "--out", tmp_path / "pages.csv",
               "--candidates", tmp_path / "candidates.csv"])
    assert "candidates" in out
    pages = read_csv(tmp_path / "pages.csv")
    assert len(pages) == 10 and all(p["correct"] == "" and p["passed"] == "" for p in pages)
    page_truth = {t["source"]: t for t in json.loads((batch / "scans" / "truth.json").read_text())}
    for p in pages:
        t = page_truth[p["source"].rsplit("/", 1)[-1]]
        assert (p["part"], p["code_number"]) == (str(t["part"]), t["code_number"])

    got = read_csv(tmp_path / "candidates.csv")
    expected = json.loads((batch / "scans" / "candidates.json").read_text())
    assert [c["code_number"] for c in got] == [c["code_number"] for c in expected]
    for cand, want in zip(got, expected, strict=True):
        flags = cand["flags"].split(";") if cand["flags"] else []
        assert [f for f in flags if f.startswith(JOIN_FLAGS)] == want["expected_flags"]
        assert len(cand["pages"].split(";")) == len(want["pages"])
        if want["expected_flags"]:
            assert (cand["status"], cand["responses"], cand["correct"], cand["passed"]) == ("review", "", "", "")
        else:
            assert len(cand["responses"]) == 200 and cand["max_points"] == "200"
            assert all(ch in ok or ch == "?" for ch, ok in zip(cand["responses"], want["acceptable"],
                                                               strict=True))
            assert cand["version"] == want["version"]
    # the part twice: both its cards carry duplicate_code on the page rows
    twice = [c for c in expected if any(f.startswith("part_duplicate") for f in c["expected_flags"])]
    dup_pages = [p for p in pages if "duplicate_code" in p["flags"]]
    assert twice and len(dup_pages) == 2 and {p["code_number"] for p in dup_pages} == {twice[0]["code_number"]}

    # later commands take the layout from the store
    run(["export", "--db", tmp_path / "r.sqlite", "--key", batch / "key.json",
         "--candidates", tmp_path / "again.csv", "--out", tmp_path / "again-pages.csv"])
    assert read_csv(tmp_path / "again.csv") == got
    assert read_csv(tmp_path / "again-pages.csv") == pages
    out = run(["scan", batch / "scans", "--key", batch / "key.json", "--workers", 1, "--db", tmp_path / "r.sqlite",
               "--candidates", tmp_path / "third.csv"])
    assert "already stored 10" in out and read_csv(tmp_path / "third.csv") == got
    # re-scoring the store leaves the part pages unscored (their candidates are scored when joined)
    run(["rescore", "--db", tmp_path / "r.sqlite", "--key", batch / "key.json", "--out", tmp_path / "re.csv"])
    assert read_csv(tmp_path / "re.csv") == pages
    run(["rescore", tmp_path / "pages.csv", "--key", batch / "key.json", "--out", tmp_path / "re2.csv"])
    assert [(p["status"], p["flags"], p["correct"]) for p in read_csv(tmp_path / "re2.csv")] == [
        (p["status"], p["flags"], "") for p in pages]


def test_export_candidates_needs_a_key(batch, tmp_path):
    result = CliRunner().invoke(cli, ["export", "--db", str(batch / "key.json"), "--candidates", "c.csv"])
    assert result.exit_code == 2 and "--candidates scores the joined cards: give --key" in result.output


def test_layouts_lists_the_shipped_cards():
    lines = run(["layouts"]).splitlines()
    assert lines[0].split()[:4] == ["name", "questions", "options", "parts"]
    rows = {line.split()[0]: line.split()[1:4] for line in lines[1:]}
    assert rows == {"cem-100": ["100", "ABCDE", "2"], "lek-ldek-v1": ["200", "ABCDE", "1"],
                    "pes-120": ["120", "ABCDE", "1"]}


def test_an_unknown_layout_name_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(cli, ["render", "--count", "1", "--out", str(tmp_path), "--layout", "cem-99"])
    assert isinstance(result.exception, LayoutError) and LayoutError.exit_code == 2
    assert "'cem-99': no such shipped layout and no such file; use one of cem-100" in str(result.exception)


def test_render_prints_each_part_of_each_code_number(tmp_path):
    run(["render", "--codes", "123456782", "--layout", "cem-100", "--format", "png", "--dpi", 100,
         "--out", tmp_path])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["card-123456782-part1.png", "card-123456782-part2.png"]
    run(["render", "--codes", "123456782", "--layout", "cem-100", "--part", 2, "--dpi", 100,
         "--out", tmp_path / "two.pdf"])
    assert (tmp_path / "two.pdf").stat().st_size > 0
    result = CliRunner().invoke(cli, ["render", "--codes", "123456782", "--layout", "pes-120", "--part", "1",
                                      "--out", str(tmp_path / "x.pdf")])
    assert result.exit_code == 2 and "has no parts" in result.output


def test_pes_cards_score_on_120_questions_with_the_60_percent_pass_mark(tmp_path):
    from scoring import AnswerKey, ResultRow, score_rows

    write_dataset(tmp_path / "scans", 2, seed=4, layout=load_layout("pes-120"), damage="none", dpi=150, **CLEAN)
    key = tmp_path / "pes.json"
    key.write_text(json.dumps({"exam": "PES", "versions": {v: {"key": "ABCDE" * 24} for v in "ABCD"}}))
    run(["scan", tmp_path / "scans", "--key", key, "--layout", "pes-120", "--workers", 1, "--out",
         tmp_path / "pages.csv", "--candidates", tmp_path / "cand.csv"])
    pages, cands = read_csv(tmp_path / "pages.csv"), read_csv(tmp_path / "cand.csv")
    assert [len(p["responses"]) for p in pages] == [120, 120] and {p["max_points"] for p in pages} == {"120"}
    assert "part" not in pages[0]
    assert sorted((c["code_number"], c["correct"]) for c in cands) == sorted(
        (p["code_number"], p["correct"]) for p in pages)
    pes = AnswerKey.from_dict(json.loads(key.read_text()))
    rows = [ResultRow("a", 1, "ok", version="A", responses=("ABCDE" * 24)[:n] + "-" * (120 - n)) for n in (72, 71)]
    assert [(r.percent, r.passed) for r in score_rows(rows, pes, details=True)] == [(60, True), (Decimal("59.17"), False)]
    assert [name for name, _ in score_rows(rows, pes, details=True)[0].extra] == ["certificate"]
