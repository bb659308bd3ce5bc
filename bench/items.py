"""Item analysis and the change report: a million cards × 200 questions on one core.

    taskset -c 0 .venv/bin/python bench/items.py                   # 1,000,000 cards, print a report
    taskset -c 0 .venv/bin/python bench/items.py --results bench/RESULTS.md   # also update "## Item analysis"

The cohort is `bench/scoring.py`'s (versions A/B, B permuted, 3 annulled, 1 accepted
alternative, LEK fields, per-candidate ability).  Two keys: that one, and one where
the objections committee annuls 5 more questions and accepts a second letter on 2.
Timed (BLAS limited to one thread, the process pinned to one CPU):

* ``analyse_items`` on the (N, 200) codes: p, upper/lower 27 %, D, point-biserial,
  shares of A–E, '-', '*', '?', KR-20, flags;
* ``compare_keys``: both keys over the cohort and the cards whose result moved;
* ``omr.report.write_slips`` for 10,000 cards (one PDF page each);
* as a check, both on a 2,000-card subset against the tests' plain-Python references.
"""

from __future__ import annotations

import os
import sys

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [os.path.dirname(_HERE), _HERE] + [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from scoring import AnswerKey, encode_responses, version_indices  # noqa: E402
from scoring.changes import compare_keys  # noqa: E402
from scoring.items import analyse_items  # noqa: E402


def _bench_scoring():
    """bench/scoring.py as a module (its name clashes with the `scoring` package)."""
    spec = importlib.util.spec_from_file_location("bench_scoring", Path(_HERE) / "scoring.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def timed(fn, repeats: int) -> tuple[list[float], object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return times, out


def check_subset(key_dict: dict, new_dict: dict, chars: np.ndarray, versions: np.ndarray, n: int) -> str:
    from tests.scoring.items_reference import reference_changes, reference_items

    cards = [
        (row.tobytes().decode("ascii"), v) for row, v in zip(chars[:n], versions[:n].tolist(), strict=True)
    ]
    key, new = AnswerKey.from_dict(key_dict), AnswerKey.from_dict(new_dict)
    codes = encode_responses([c for c, _ in cards], key.options, key.questions)
    vi = version_indices([v for _, v in cards], key)
    got, ref = analyse_items(codes, vi, key), reference_items(key_dict, cards)
    worst = max(abs(got.point_biserial[m - 1] - r["r_pb"]) for m, r in ref["items"].items())
    assert all(got.flags[m - 1] == r["flags"] for m, r in ref["items"].items())
    assert math.isclose(got.kr20, ref["kr20"], rel_tol=1e-9)
    changes = compare_keys(codes, vi, key, new)
    assert changes.changed.tolist() == [r["index"] for r in reference_changes(key_dict, new_dict, cards)]
    return f"{n} cards: items and changes equal to the plain-Python references (largest r_pb difference {worst:.1e})"


def bench_slips(key: AnswerKey, chars: np.ndarray, versions: np.ndarray, n: int) -> tuple[float, int]:
    import tempfile

    from omr.report import write_slips
    from scoring import score_rows
    from scoring.results import ResultRow

    rows = [
        ResultRow(
            source=f"scan-{i}.jpg",
            page=1,
            status="ok",
            code_number=f"{i:09d}",
            version=str(v),
            responses=chars[i].tobytes().decode("ascii"),
        )
        for i, v in enumerate(versions[:n].tolist())
    ]
    rows = score_rows(rows, key, details=True)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        pages = write_slips(rows, key, Path(tmp) / "slips.pdf")
        return time.perf_counter() - t0, pages


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--results", type=Path, help="Replace the '## Item analysis' section of this file.")
    args = parser.parse_args()
    bs = _bench_scoring()
    key_dict = bs.make_key(args.seed)
    new_dict = dict(
        key_dict,
        annulled=sorted({*key_dict.get("annulled", []), 11, 22, 33, 44, 55}),
        accepted={**key_dict.get("accepted", {}), "66": "AB", "77": "CD"},
    )
    chars, versions = bs.make_cohort(key_dict, args.cards, args.seed)
    key, new = AnswerKey.from_dict(key_dict), AnswerKey.from_dict(new_dict)
    codes = encode_responses([row.tobytes().decode("ascii") for row in chars], key.options, key.questions)
    vi = version_indices(versions.tolist(), key)
    item_times, items = timed(lambda: analyse_items(codes, vi, key), args.repeats)
    change_times, changes = timed(lambda: compare_keys(codes, vi, key, new), args.repeats)
    slips_s, slips_n = bench_slips(key, chars, versions, 10_000)
    check = check_subset(key_dict, new_dict, chars, versions, 2000)
    cpu = platform.processor() or platform.machine()
    load = os.getloadavg()[0]
    flagged = sum(1 for f in items.flags if f)
    text = "\n".join(
        [
            "## Item analysis",
            "",
            f"`taskset -c 0 .venv/bin/python bench/items.py --cards {args.cards}` — {time.strftime('%Y-%m-%d')}, "
            f"{cpu}, one core (pinned, BLAS 1 thread), NumPy {np.__version__}, load average {load:.1f} on "
            f"{os.cpu_count()} CPUs.",
            f"Cohort: {args.cards:,} cards × {key.questions} questions (bench/scoring.py's), versions A/B.",
            "",
            "| step | median of " + str(args.repeats) + " | best |",
            "|---|---|---|",
            f"| `analyse_items` (p, 27 % groups, D, point-biserial, A–E/-/*/? shares, KR-20, flags) | "
            f"**{statistics.median(item_times):.2f} s** | {min(item_times):.2f} s |",
            f"| `compare_keys` (both keys, the cards that moved) | **{statistics.median(change_times):.2f} s** | "
            f"{min(change_times):.2f} s |",
            f"| `write_slips` ({slips_n:,} cards, one A4 page each), one run | {slips_s:.2f} s "
            f"({1000 * slips_s / slips_n:.2f} ms a page) | |",
            "",
            f"KR-20 {items.kr20:.3f}, {flagged} questions flagged; the new key (5 more annulled, 2 alternatives) "
            f"moves {changes.changed.size:,} cards ({changes.passed_to_failed:,} pass→fail, "
            f"{changes.failed_to_passed:,} fail→pass).  Check: {check}.",
            "",
        ]
    )
    print(text)
    if args.results:
        body = args.results.read_text(encoding="utf-8")
        start = body.find("## Item analysis")
        if start < 0:
            body = body.rstrip("\n") + "\n\n" + text
        else:
            end = body.find("\n## ", start + 1)
            body = body[:start] + text + ("" if end < 0 else body[end + 1 :])
        args.results.write_text(body, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
