"""`omr rescore`: re-score a results CSV with a new key, row by row against the reference."""

from __future__ import annotations

import csv
import json
import random
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

from omr.cli import cli, main
from omr.errors import AnswerKeyError
from scoring import RESULT_COLUMNS
from tests.scoring.reference import reference_score

Q = 200


def _key(seed: int, annulled: list[int], accepted: dict[str, str], policy: str = "exclude") -> dict:
    rng = random.Random(seed)
    a = "".join(rng.choice("ABCDE") for _ in range(Q))
    order = list(range(1, Q + 1))
    rng.shuffle(order)
    return {"exam": "LEK", "session": "2026-09", "questions": Q,
            "versions": {"A": {"key": a}, "B": {"key": "".join(a[m - 1] for m in order), "order": order}},
            "annulled": annulled, "accepted": accepted, "annulled_policy": policy, "pass_percent": 56}


def _results(path: Path, key: dict, n: int, seed: int = 1) -> list[dict]:
    """A results CSV of ``n`` rows: candidates who know ~55-60 %, some review and error rows."""
    rng = random.Random(seed)
    gen = np.random.default_rng(seed)
    noise = np.array(list("ABCDE--*?"))[gen.integers(0, 9, (n, Q))]
    know = gen.random((n, Q)) < gen.uniform(0.45, 0.7, (n, 1))
    rows = []
    for i in range(n):
        if i % 50 == 7:
            rows.append({"source": f"scans/{i:05d}.jpg", "page": "1", "status": "error", "code_number": "",
                         "version": "", "responses": "", "correct": "", "max_points": "", "percent": "",
                         "passed": "", "flags": "markers_not_found"})
            continue
        version = rng.choice("AB")
        right = np.array(list(key["versions"][version]["key"]))
        responses = "".join(np.where(know[i], right, noise[i]))
        status, flags = "ok", ""
        if "?" in responses[:40]:
            status, flags = "review", f"ambiguous:{responses.index('?') + 1}"
        rows.append({"source": f"scans/{i:05d}.jpg", "page": "1", "status": status,
                     "code_number": f"{i:09d}", "version": version, "responses": responses, "correct": "0",
                     "max_points": "200", "percent": "0.00", "passed": "false", "flags": flags})
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=RESULT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return rows


def rescore(*args: object) -> Result:
    return CliRunner().invoke(cli, ["rescore", *(str(a) for a in args)])


def _write_key(path: Path, key: dict) -> Path:
    path.write_text(json.dumps(key), encoding="utf-8")
    return path


def _read(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    folder = tmp_path_factory.mktemp("rescore")
    first = _key(3, [17], {})
    path = folder / "results.csv"
    rows = _results(path, first, 20_000)
    scored = folder / "scored.csv"
    result = rescore(path, "--key", _write_key(folder / "first.json", first), "--out", scored)
    assert result.exit_code == 0, result.output
    return scored, rows


def test_rescore_20000_rows_matches_the_reference(cohort: tuple[Path, list[dict]], tmp_path: Path) -> None:
    scored, _ = cohort
    new_key = _key(3, [17, 133, 150], {"45": "BD"})
    out, jsonl = tmp_path / "new.csv", tmp_path / "new.jsonl"
    key_path = _write_key(tmp_path / "new.json", new_key)
    result = rescore(scored, "--key", key_path, "--out", out, "--jsonl", jsonl)
    assert result.exit_code == 0, result.output
    before, after = _read(scored), _read(out)
    assert list(after[0])[:11] == list(RESULT_COLUMNS)
    assert len(after) == 20_000 == len(jsonl.read_text(encoding="utf-8").splitlines())
    changed = flipped = 0
    for old, new in zip(before, after, strict=True):
        kept = ("source", "page", "status", "code_number", "version", "responses", "flags")
        assert [new[k] for k in kept] == [old[k] for k in kept]
        if new["status"] == "error":
            assert new["correct"] == new["max_points"] == new["percent"] == new["passed"] == ""
            continue
        ref = reference_score(new_key, new["responses"], new["version"])
        assert (int(new["correct"]), int(new["max_points"]), new["percent"], new["passed"]) == (
            ref.correct, ref.max_points, ref.percent, "true" if ref.passed else "false")
        changed += (old["correct"], old["percent"]) != (new["correct"], new["percent"])
        flipped += old["passed"] != new["passed"]
    summary = result.output.splitlines()[0]
    assert summary.startswith(f"rescored 20000 rows: {changed} changed score, {flipped} changed pass/fail")
    assert "error 400" in summary and "max points 199 → 197" in summary


def test_rescore_details_add_the_certificate_and_fields(
    cohort: tuple[Path, list[dict]], tmp_path: Path
) -> None:
    scored, _ = cohort
    key_path = _write_key(tmp_path / "k.json", _key(3, [17], {}))
    out = tmp_path / "d.csv"
    result = rescore(scored, "--key", key_path, "--out", out, "--details")
    assert result.exit_code == 0, result.output
    assert "0 changed score, 0 changed pass/fail" in result.output
    rows = _read(out)
    assert list(rows[0])[11:15] == ["certificate", "correct:choroby wewnętrzne", "max_points:choroby wewnętrzne",
                                    "percent:choroby wewnętrzne"]
    ok = next(r for r in rows if r["status"] == "ok")
    assert ok["certificate"] == (f"z wynikiem {ok['percent']}% ({ok['correct']} "
                                 f"{ok['certificate'].split()[4]} / 199 możliwych)")
    assert sum(int(ok[c]) for c in list(rows[0])[12:] if c.startswith("correct:")) == int(ok["correct"])
    again = tmp_path / "again.csv"  # details stay (and are recomputed) by default
    assert rescore(out, "--key", key_path, "--out", again).exit_code == 0
    assert _read(again) == rows


def test_rescore_in_place_and_version_fix(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text(",".join(RESULT_COLUMNS) + "\n" + "a.jpg,1,ok,012345674,B,ABCD,,,,,rotated:180\n",
                    encoding="utf-8")
    only_a = _write_key(tmp_path / "a.json", {"versions": {"A": {"key": "ABCD"}, "C": {"key": "ABCD"}},
                                              "pass_percent": 56})
    both = _write_key(tmp_path / "ab.json", {"versions": {"A": {"key": "ABCD"}, "B": {"key": "ABCA"}},
                                             "pass_percent": 56})
    assert rescore(path, "--key", only_a, "--out", path).exit_code == 0
    row = _read(path)[0]
    assert (row["status"], row["flags"]) == ("review", "rotated:180;version_not_in_key")
    result = rescore(path, "--key", both, "--out", path)
    assert result.exit_code == 0
    assert "1 newly scored" in result.output and "1 changed status" in result.output
    row = _read(path)[0]
    assert [row[k] for k in ("status", "flags", "correct", "percent")] == ["ok", "rotated:180", "3", "75.00"]


def test_rescore_usage_and_key_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "r.csv"
    path.write_text(",".join(RESULT_COLUMNS) + "\n", encoding="utf-8")
    key = _write_key(tmp_path / "k.json",
                     {"versions": {"A": {"key": "AB"}}, "annulled": [3], "pass_percent": 56})
    result = rescore(path, "--key", key)
    assert result.exit_code == 2 and "nothing to write" in result.output
    result = rescore(path, "--key", key, "--out", tmp_path / "o.csv")
    assert isinstance(result.exception, AnswerKeyError)
    monkeypatch.setattr(sys, "argv", ["omr", "rescore", str(path), "--key", str(key), "--out", "o.csv"])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2  # a broken key is a usage error
    err = capsys.readouterr().err
    assert err.startswith("error: AnswerKeyError: answer key ")
    assert "annulled[0]: 3 is not a question number 1..2" in err
    bad = tmp_path / "bad.csv"
    bad.write_text("source,page\n", encoding="utf-8")
    good_key = _write_key(tmp_path / "g.json", {"versions": {"A": {"key": "AB"}}, "pass_percent": 56})
    result = rescore(bad, "--key", good_key, "--out", tmp_path / "o.csv")
    assert "missing columns status" in str(result.exception)
