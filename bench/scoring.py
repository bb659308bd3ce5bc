"""Scoring speed: a million cards on one core, against a plain per-card Python loop.

    .venv/bin/python bench/scoring.py                       # 1,000,000 cards, print a report
    .venv/bin/python bench/scoring.py --results bench/RESULTS.md   # also update its "## Scoring"

The cohort: 200 questions, versions A and B (B prints the questions in another order),
3 questions annulled, 1 with an accepted alternative, LEK pass mark and field
breakdown.  Candidates answer right with a per-candidate probability and otherwise
mark a wrong letter, nothing, two boxes or an ambiguous box.

Measured, in one run, pinned to one CPU with BLAS limited to one thread:

* ``score_codes`` on the (N, 200) code array (the core: correct, percent, passed and
  the ten fields per card), several repetitions;
* ``encode_responses`` (strings → codes) and ``version_indices``;
* a plain per-card Python loop (spec §5 word for word, ``Fraction`` for percent and
  pass) on a subset, extrapolated to N, and checked equal to the vectorised result;
* ``omr rescore`` on a 20,000-row results CSV as a subprocess (start-up included),
  checked row by row against the same loop.
"""

from __future__ import annotations

import os
import sys

# one core: set before NumPy loads OpenBLAS
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"
# this file is bench/scoring.py: keep its folder off the path so `import scoring` is the package
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [os.path.dirname(_HERE)] + [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from fractions import Fraction  # noqa: E402
from math import floor  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from omr.decode import luhn_check_digit  # noqa: E402

from scoring import (  # noqa: E402
    RESULT_COLUMNS,
    AnswerKey,
    encode_responses,
    format_percent,
    score_codes,
    version_indices,
)

Q = 200
OPTIONS = "ABCDE"


def make_key(seed: int) -> dict:
    """An LEK key: two versions, 3 annulled, 1 accepted alternative."""
    rng = np.random.default_rng(seed)
    a = "".join(np.array(list(OPTIONS))[rng.integers(0, 5, Q)])
    order = (rng.permutation(Q) + 1).tolist()
    b = "".join(a[m - 1] for m in order)
    accepted_letter = "A" if a[44] != "A" else "B"
    return {"exam": "LEK", "session": "bench", "questions": Q,
            "versions": {"A": {"key": a}, "B": {"key": b, "order": order}},
            "annulled": [17, 88, 133], "accepted": {"45": accepted_letter},
            "annulled_policy": "exclude", "pass_percent": 56}


def make_cohort(key: dict, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, Q) response characters as bytes (uint8) and (N,) version labels."""
    rng = np.random.default_rng(seed)
    versions = np.array(["A", "B"])[rng.integers(0, 2, n)]
    right = np.stack([np.frombuffer(key["versions"][v]["key"].encode(), np.uint8) for v in "AB"])
    out = np.empty((n, Q), dtype=np.uint8)
    other = np.frombuffer(b"ABCDE--*?", np.uint8)
    step = 100_000
    for s in range(0, n, step):
        m = min(step, n - s)
        skill = rng.uniform(0.35, 0.85, (m, 1))
        knows = rng.random((m, Q)) < skill
        guess = other[rng.integers(0, len(other), (m, Q))]
        out[s:s + m] = np.where(knows, right[(versions[s:s + m] == "B").astype(int)], guess)
    return out, versions


def loop_score(key: dict, responses: str, version: str) -> tuple[int, int, str, bool]:
    """The plain per-card loop: spec §5 word for word."""
    v = key["versions"][version]
    order = v.get("order") or range(1, Q + 1)
    annulled = set(key["annulled"])
    accepted = {int(m): letters for m, letters in key["accepted"].items()}
    correct = 0
    for p in range(Q):
        master = order[p]
        if master in annulled:
            continue
        if responses[p] == v["key"][p] or responses[p] in accepted.get(master, ""):
            correct += 1
    max_points = Q - len(annulled)
    percent = Fraction(100 * correct, max_points)
    hundredths = floor(percent * 100 + Fraction(1, 2))
    return correct, max_points, f"{hundredths // 100}.{hundredths % 100:02d}", percent >= key["pass_percent"]


def bench_core(key: AnswerKey, chars: np.ndarray, versions: np.ndarray, repeats: int) -> dict:
    n = len(chars)
    strings = [row.tobytes().decode("ascii") for row in chars]  # what a results file holds
    t = time.perf_counter()
    codes = encode_responses(strings, key.options, key.questions)
    encode_s = time.perf_counter() - t
    t = time.perf_counter()
    vidx = version_indices(versions.tolist(), key)
    versions_s = time.perf_counter() - t
    del strings
    runs, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        scores = score_codes(codes, vidx, key)
        runs.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return {"n": n, "codes": codes, "scores": scores, "runs": runs, "cpu": cpu, "encode_s": encode_s,
            "versions_s": versions_s}


def bench_loop(key_dict: dict, chars: np.ndarray, versions: np.ndarray, subset: int) -> dict:
    strings = [row.tobytes().decode("ascii") for row in chars[:subset]]
    t = time.perf_counter()
    results = [loop_score(key_dict, s, v) for s, v in zip(strings, versions[:subset].tolist(), strict=True)]
    return {"subset": subset, "seconds": time.perf_counter() - t, "results": results}


def bench_rescore(key_dict: dict, chars: np.ndarray, versions: np.ndarray, rows: int) -> dict:
    """``omr rescore`` on a results CSV of ``rows`` rows (a subprocess), checked row by row.

    The CSV is first scored with the key as it was before the objections (nothing
    annulled, no alternative); the timed run re-scores it with the final key.
    """
    omr = Path(sys.executable).with_name("omr")
    with tempfile.TemporaryDirectory(prefix="bench-scoring-") as tmp:
        src, out, key_path = Path(tmp) / "results.csv", Path(tmp) / "new.csv", Path(tmp) / "key.json"
        first_key = Path(tmp) / "first-key.json"
        first_key.write_text(json.dumps({**key_dict, "annulled": [], "accepted": {}}), encoding="utf-8")
        key_path.write_text(json.dumps(key_dict), encoding="utf-8")
        with open(src, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(RESULT_COLUMNS)
            for i in range(rows):
                code = f"{i:08d}" + luhn_check_digit(f"{i:08d}")  # valid: else every row is review
                w.writerow([f"scans/{i:06d}.jpg", 1, "ok", code, versions[i],
                            chars[i].tobytes().decode("ascii"), 0, 200, "0.00", "false", ""])
        subprocess.run([str(omr), "rescore", str(src), "--key", str(first_key), "--out", str(src)],
                       capture_output=True, check=True)
        cmd = [str(omr), "rescore", str(src), "--key", str(key_path), "--out", str(out)]
        t = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        seconds = time.perf_counter() - t
        with open(out, newline="", encoding="utf-8") as fh:
            got = [(int(r["correct"]), int(r["max_points"]), r["percent"], r["passed"] == "true")
                   for r in csv.DictReader(fh)]
    want = [loop_score(key_dict, chars[i].tobytes().decode("ascii"), versions[i]) for i in range(rows)]
    mismatches = sum(g != w for g, w in zip(got, want, strict=True)) + abs(len(got) - len(want))
    summary = done.stdout.splitlines()[0]
    return {"rows": rows, "seconds": seconds, "mismatches": mismatches, "summary": summary}


def report(core: dict, loop: dict, rescore: dict | None, cpu: str) -> str:
    n, runs = core["n"], core["runs"]
    per_million = [r * 1e6 / n for r in runs]
    loop_per_card = loop["seconds"] / loop["subset"]
    loop_million = loop_per_card * 1e6
    scores = core["scores"]
    lines = [
        "## Scoring",
        "",
        f"`.venv/bin/python bench/scoring.py --cards {n}` — {time.strftime('%Y-%m-%d')}, {cpu}, one core "
        f"(pinned, BLAS 1 thread), NumPy {np.__version__}, load average {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} CPUs shared with other work.",
        f"Cohort: {n:,} cards × {Q} questions, versions A/B (B permuted), 3 annulled, 1 accepted "
        "alternative, LEK fields; correct, percent, pass and the ten field counts per card.",
        "",
        "| step | time | per million cards |",
        "|---|---|---|",
        f"| `score_codes` (the core), median of {len(runs)} | {statistics.median(runs):.3f} s | "
        f"**{statistics.median(per_million):.3f} s** (best {min(per_million):.3f}, "
        f"worst {max(per_million):.3f}; CPU {statistics.median(core['cpu']) * 1e6 / n:.3f}) |",
        f"| `encode_responses` (strings → codes) | {core['encode_s']:.3f} s | "
        f"{core['encode_s'] * 1e6 / n:.3f} s |",
        f"| `version_indices` | {core['versions_s']:.3f} s | {core['versions_s'] * 1e6 / n:.3f} s |",
        f"| plain per-card Python loop (`Fraction`), {loop['subset']:,} cards timed | "
        f"{loop['seconds']:.2f} s | {loop_million:.0f} s (extrapolated) |",
        "",
        f"The core is {loop_million / statistics.median(per_million):,.0f}× the plain loop; the loop and "
        f"the core agree on all {loop['subset']:,} timed cards.  Mean score {scores.correct.mean():.1f} / "
        f"{scores.max_points}, pass rate {scores.passed.mean():.1%}.",
    ]
    if rescore is not None:
        lines += [
            "",
            f"`omr rescore` of a {rescore['rows']:,}-row results CSV, scored first with the key before the "
            "objections, with the final key (3 annulled, 1 alternative; subprocess, start-up, CSV read and "
            f"write included): **{rescore['seconds']:.2f} s**; {rescore['mismatches']} rows differ from "
            f"the plain loop.  It printed: `{rescore['summary']}`",
        ]
    return "\n".join(lines) + "\n"


def update_results(path: Path, section: str) -> None:
    """Replace (or append) the ``## Scoring`` section of ``path``, leaving the others alone."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    pattern = re.compile(r"^## Scoring\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cards", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--loop-cards", type=int, default=20_000, help="cards for the plain Python loop")
    parser.add_argument("--rescore-rows", type=int, default=20_000, help="0 to skip the CLI run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--results", type=Path, help="update the '## Scoring' section of this file")
    args = parser.parse_args()

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo", encoding="utf-8")
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass

    key_dict = make_key(args.seed)
    key = AnswerKey.from_dict(key_dict, source="bench")
    chars, versions = make_cohort(key_dict, args.cards, args.seed)
    core = bench_core(key, chars, versions, args.repeats)
    loop = bench_loop(key_dict, chars, versions, min(args.loop_cards, args.cards))
    s = core["scores"]
    for i, (c, m, p, ok) in enumerate(loop["results"]):
        got = (int(s.correct[i]), s.max_points, format_percent(s.percent_hundredths[i]), bool(s.passed[i]))
        if got != (c, m, p, ok):
            print(f"MISMATCH card {i}: core {got}, loop {(c, m, p, ok)}", file=sys.stderr)
            return 1
    rescore = bench_rescore(key_dict, chars, versions, min(args.rescore_rows, args.cards)) \
        if args.rescore_rows else None
    text = report(core, loop, rescore, cpu)
    print(text)
    if args.results:
        update_results(args.results, text)
        print(f"updated {args.results}")
    return 1 if rescore and rescore["mismatches"] else 0


if __name__ == "__main__":
    sys.exit(main())
