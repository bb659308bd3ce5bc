"""Reading accuracy on generated damaged cards: silent errors, '?' rate, barcodes, registration.

    .venv/bin/python bench/accuracy.py --count 300 --damage all --seed 1
    .venv/bin/python bench/accuracy.py --layout cem-100 --count 100 --damage all --seed 21

``--layout`` takes a shipped layout's name or a layout file.  On a layout of several
parts (``cem-100``) the cards are candidates' parts (`omr.synth.candidate_plan`: shuffled,
some candidates with a part missing, a part twice, parts of different versions); the
report adds the part numbers read and the candidates joined from the readings
(`scoring.candidates.join_candidates`): a *silent candidate error* is an ``ok`` candidate
whose truth has a joining anomaly, a wrong code number or a joined read outside the
truth.

A *silent error* is what must never happen: a card reported ``ok`` whose read of a
question is outside the truth's acceptable set, or whose code number or version is
wrong.  Cards sent to review with a reason are not errors (their cost is the review
rate, reported too).  Everything is generated in memory by `omr.synth`; the reader
gets exactly what it would get from the scanner's file.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

import cv2
import numpy as np
from threadpoolctl import threadpool_limits

# run as a script, bench/ is first on the path, and bench/scoring.py would shadow the package
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

from omr.detect import project_points
from omr.errors import OmrError
from omr.layout import load_layout
from omr.reader import read_card
from omr.render import barcode_payload
from omr.synth import candidate_plan, candidate_truth, random_card_spec, random_damage, synth_card
from scoring import AnswerKey
from scoring.candidates import PageRecord, join_candidates


@dataclass
class Tally:
    cards: int = 0
    ok: int = 0
    review: int = 0
    error: int = 0
    questions: int = 0
    question_marks: int = 0
    question_marks_clear: int = 0  # '?' where the truth allows only one read
    bitonal_cards: int = 0
    bitonal_questions: int = 0
    bitonal_question_marks: int = 0
    silent_answer_errors: int = 0
    unmarked_misreads: int = 0  # wrong reads not shown as '?', on any card (ok or review)
    silent_code_errors: int = 0
    silent_version_errors: int = 0
    barcodes_expected: int = 0
    barcodes_read: int = 0
    mismatches_expected: int = 0
    mismatches_flagged: int = 0
    max_registration_mm: float = 0.0
    read_seconds: float = 0.0
    parts_expected: int = 0
    parts_read: int = 0
    silent_part_errors: int = 0
    candidates: int = 0
    candidates_ok: int = 0
    anomalies_expected: int = 0
    anomalies_flagged: int = 0
    silent_candidate_errors: int = 0
    reasons: Counter = field(default_factory=Counter)
    examples: list = field(default_factory=list)
    # per (damage preset, mark kind): questions, '?' and wrong reads not shown as '?'
    kind_questions: Counter = field(default_factory=Counter)
    kind_marks: Counter = field(default_factory=Counter)
    kind_wrong: Counter = field(default_factory=Counter)
    heavy_clear_marks: int = 0  # '?' where the truth allows one read only, on heavy damage
    heavy_clear_marks_grey: int = 0  # the same on grey and colour scans only


#: the mark kinds reported, from the synth truth's pattern and style of each question
KINDS = ("fill", "cross", "tick", "erasure beside a fill", "erasure beside a cross", "half fill",
         "double mark", "blank", "residue", "faint", "mark + faint", "double + half")


def mark_kind(pattern: str, styles: str) -> str:
    """The kind of a question's marks (`KINDS`) from `omr.synth`'s truth."""
    main = styles.split("+")[0]
    if pattern == "one":
        return {"fill": "fill", "check": "tick"}.get(main, "cross")
    if pattern == "correction":
        main = next(st for st in styles.split("+") if st != "erased")
        return "erasure beside a fill" if main == "fill" else "erasure beside a cross"
    return {"blank": "blank", "multiple": "double mark", "half": "half fill", "residue": "residue",
            "faint": "faint", "one_plus_faint": "mark + faint", "multiple_half": "double + half"}[pattern]


def run(
    count: int,
    seed: int,
    damage: str,
    dpi: float | None = None,
    verbose: bool = False,
    gamma: tuple[float, float] | None = None,
    layout_name: str | None = None,
) -> Tally:
    layout = load_layout(layout_name)
    rng = np.random.default_rng(seed)
    t = Tally()
    plan = candidate_plan(layout, count, seed).pages if layout.parts is not None else None
    truths, records = [], []
    for i in range(count):
        if plan is None:
            spec = random_card_spec(layout, rng)
        else:
            p = plan[i]
            spec = random_card_spec(layout, rng, code_number=p.code_number, version=p.version, part=p.part)
        ranges: dict = {"dpi": (dpi,)} if dpi else {}
        if gamma:
            ranges["gamma"] = gamma
        # the preset drawn as random_damage(rng, "all") draws it (same stream), to report by it
        preset = ("none", "mild", "heavy")[int(rng.choice(3, p=[0.2, 0.5, 0.3]))] if damage == "all" else damage
        dmg = random_damage(rng, preset, **ranges)
        card = synth_card(layout, spec, dmg, seed=seed * 100_003 + i)
        image = card.image if card.image.ndim == 2 else cv2.cvtColor(card.image, cv2.COLOR_BGR2GRAY)
        truth = {**card.truth, "source": f"card-{i}", "page": 1}
        truths.append(truth)
        t.cards += 1
        start = time.perf_counter()
        try:
            reading = read_card(image, layout)
        except OmrError as err:
            t.read_seconds += time.perf_counter() - start
            t.error += 1
            t.reasons[f"error:{type(err).__name__}"] += 1
            records.append(PageRecord(f"card-{i}", 1, "error", "", "", ""))
            if verbose:
                print(f"card {i}: {type(err).__name__}: {err}  damage={dmg}", file=sys.stderr)
            continue
        t.read_seconds += time.perf_counter() - start
        acceptable = truth["acceptable"]
        wrong = [q for q, ch in enumerate(reading.responses) if ch not in acceptable[q]]
        t.questions += len(acceptable)
        t.unmarked_misreads += sum(reading.responses[q] != "?" for q in wrong)
        t.question_marks += reading.responses.count("?")
        if "bitonal" in reading.flags:
            t.bitonal_cards += 1
            t.bitonal_questions += len(acceptable)
            t.bitonal_question_marks += reading.responses.count("?")
        clear_marks = sum(ch == "?" and len(acceptable[q]) == 1 for q, ch in enumerate(reading.responses))
        t.question_marks_clear += clear_marks
        t.heavy_clear_marks += clear_marks if preset == "heavy" else 0
        t.heavy_clear_marks_grey += clear_marks if preset == "heavy" and "bitonal" not in reading.flags else 0
        spec = truth["spec"]
        for q, (pattern, styles) in enumerate(zip(spec["patterns"], spec["styles"], strict=True)):
            kind = (preset, mark_kind(pattern, styles))
            t.kind_questions[kind] += 1
            t.kind_marks[kind] += reading.responses[q] == "?"
            t.kind_wrong[kind] += reading.responses[q] not in acceptable[q] and reading.responses[q] != "?"
        if truth.get("barcode_readable"):
            t.barcodes_expected += 1
            t.barcodes_read += reading.barcode == barcode_payload(layout, truth["code_number"], truth["part"])
        if "code_mismatch" in truth.get("expected_flags", []):
            t.mismatches_expected += 1
            t.mismatches_flagged += "code_mismatch" in reading.flags
        px_per_mm = float(np.sqrt(abs(np.linalg.det(np.asarray(truth["mm_to_px"])[:2, :2]))))
        found = project_points(reading.homography, layout.box_centers())
        err_mm = np.linalg.norm(found - np.asarray(truth["box_centers_px"]), axis=1).max() / px_per_mm
        t.max_registration_mm = max(t.max_registration_mm, float(err_mm))
        for flag in reading.flags:
            t.reasons[flag.split(":")[0]] += 1
        if plan is not None:
            t.parts_expected += 1
            t.parts_read += reading.part == str(truth["part"])
            records.append(PageRecord(f"card-{i}", 1, "review" if reading.needs_review else "ok",
                                      reading.code_number, reading.version, reading.responses,
                                      int(reading.part) if reading.part else None, reading.flags))
        if reading.needs_review:
            t.review += 1
            continue
        t.ok += 1
        truth_version = truth.get("version") or ""
        code_wrong = reading.code_number != truth["code_number"]
        version_wrong = reading.version != truth_version
        t.silent_answer_errors += len(wrong)
        t.silent_code_errors += code_wrong
        t.silent_version_errors += version_wrong
        t.silent_part_errors += plan is not None and reading.part != str(truth["part"])
        if (wrong or code_wrong or version_wrong) and len(t.examples) < 20:
            t.examples.append(
                {
                    "card": i,
                    "wrong": [(q + 1, reading.responses[q], acceptable[q]) for q in wrong[:5]],
                    "code": (reading.code_number, truth["code_number"]) if code_wrong else None,
                    "version": (reading.version, truth_version) if version_wrong else None,
                    "damage": dmg,
                }
            )
    if plan is not None:
        _tally_candidates(t, layout, truths, records)
    return t


def _tally_candidates(t: Tally, layout, truths: list, records: list) -> None:
    """Join the readings per candidate and hold them against the candidates' truth."""
    labels = layout.version.labels
    total = layout.total_questions
    key = AnswerKey.from_dict({"questions": total, "pass_percent": 56,
                               "versions": {v: {"key": layout.options[0] * total} for v in labels}},
                              options=layout.options)
    joined = {r.code_number: r for r in join_candidates(records, key, parts=layout.part_count,
                                                        questions=layout.questions) if r.code_number}
    for truth in candidate_truth(layout, truths):
        t.candidates += 1
        got = joined.get(truth["code_number"])
        expected = truth["expected_flags"]
        t.anomalies_expected += bool(expected)
        if got is None:  # none of its cards was read with its code number: nothing reported ok
            t.anomalies_flagged += bool(expected)
            continue
        t.anomalies_flagged += bool(expected) and all(f in got.flags for f in expected)
        if got.status != "ok":
            continue
        t.candidates_ok += 1
        wrong = bool(expected) or truth["acceptable"] is None or got.version != (truth["version"] or "")
        wrong = wrong or any(ch not in ok for ch, ok in zip(got.responses, truth["acceptable"] or [], strict=False))
        t.silent_candidate_errors += wrong


def kind_table(t: Tally) -> list[str]:
    """Per mark kind: questions, '?' rate and wrong reads not shown as '?', all damage and heavy only."""
    lines = [f"  {'mark kind':24} {'questions':>9} {'? %':>7} {'wrong':>5}   {'heavy: q':>8} {'? %':>7} {'wrong':>5}"]
    for kind in KINDS:
        every = [k for k in t.kind_questions if k[1] == kind]
        n = sum(t.kind_questions[k] for k in every)
        if not n:
            continue
        marks, wrong = sum(t.kind_marks[k] for k in every), sum(t.kind_wrong[k] for k in every)
        h = ("heavy", kind)
        hn = t.kind_questions[h]
        lines.append(f"  {kind:24} {n:9d} {100 * marks / n:7.2f} {wrong:5d}   {hn:8d} "
                     f"{100 * t.kind_marks[h] / max(hn, 1):7.2f} {t.kind_wrong[h]:5d}")
    return lines


def report(t: Tally, args: argparse.Namespace) -> str:
    read = t.ok + t.review
    grey_marks = t.question_marks - t.bitonal_question_marks
    grey_questions = t.questions - t.bitonal_questions
    lines = [
        f"accuracy: {t.cards} cards of {args.layout or 'lek-ldek-v1'}, damage={args.damage}, seed={args.seed}"
        + (f", dpi={args.dpi}" if args.dpi else "")
        + (f", gamma={args.gamma}" if args.gamma else ""),
        f"  ok {t.ok}  review {t.review}  error {t.error}",
        f"  silent errors on ok cards: answers {t.silent_answer_errors}, code numbers "
        f"{t.silent_code_errors}, versions {t.silent_version_errors}",
        f"  wrong reads not shown as '?' on any card (ok or review): {t.unmarked_misreads}",
        f"  '?' on {t.question_marks} of {t.questions} questions read "
        f"({100 * t.question_marks / max(t.questions, 1):.3f} %); on clear questions "
        f"(one acceptable read) {t.question_marks_clear} "
        f"({100 * t.question_marks_clear / max(t.questions, 1):.3f} %)",
        f"  of which on {t.bitonal_cards} 1-bit scans {t.bitonal_question_marks} of {t.bitonal_questions}; "
        f"on grey/colour scans {grey_marks} of {grey_questions} "
        f"({100 * grey_marks / max(grey_questions, 1):.3f} %)",
        f"  barcodes read {t.barcodes_read}/{t.barcodes_expected} of the readable ones",
        f"  grid/barcode disagreements flagged {t.mismatches_flagged}/{t.mismatches_expected}",
        f"  worst box-centre registration error {t.max_registration_mm:.3f} mm",
        f"  read time {1000 * t.read_seconds / max(read + t.error, 1):.1f} ms per card (one core, in memory)",
        *([f"  parts read {t.parts_read}/{t.parts_expected}; silent part errors on ok cards {t.silent_part_errors}",
           f"  candidates {t.candidates}: ok {t.candidates_ok}, silent candidate errors {t.silent_candidate_errors}; "
           f"anomalies (part missing/twice, versions) flagged {t.anomalies_flagged}/{t.anomalies_expected}"]
          if t.parts_expected else []),
        "  flags: " + ", ".join(f"{k} {v}" for k, v in t.reasons.most_common()),
        f"  '?' on clear questions on heavy damage: {t.heavy_clear_marks} "
        f"(on grey/colour scans {t.heavy_clear_marks_grey})",
        *kind_table(t),
    ]
    for ex in t.examples:
        lines.append(f"  SILENT: {ex}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--damage", default="all", help="none, mild, heavy or all")
    parser.add_argument("--dpi", type=float, default=None)
    parser.add_argument(
        "--gamma", default=None, help="LO,HI: scanner tone curves drawn from this range (default: none)"
    )
    parser.add_argument("--layout", default=None, help="a shipped layout's name or a layout file "
                        "(default: lek-ldek-v1)")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    # one thread of each library, as in a batch worker (the read time is one core's)
    cv2.setNumThreads(1)
    threadpool_limits(limits=1)
    gamma = tuple(float(v) for v in args.gamma.split(",")) if args.gamma else None
    tally = run(args.count, args.seed, args.damage, args.dpi, args.verbose, gamma, args.layout)
    print(report(tally, args))
    silent = (tally.silent_answer_errors + tally.silent_code_errors + tally.silent_version_errors
              + tally.silent_part_errors + tally.silent_candidate_errors)
    return 1 if silent else 0


if __name__ == "__main__":
    sys.exit(main())
