"""Regenerate sample_scans/: a small, reproducible batch of synthetic scanned cards.

    .venv/bin/python bench/make_samples.py [--out sample_scans]

Writes ten pages in mixed formats (JPEG, PNG, a 2-page TIFF, a 2-page PDF) with the
kinds of trouble a real batch has -- an upside-down card, a skewed colour scan on a
dark bed, a 1-bit page, a barcode covered by a sticker, a grid that disagrees with the
barcode, corrections, a missing version mark -- plus one truncated JPEG, the answer key
(`key.json`, spec section 4: versions A and B, B with its own question order, one
annulled question, one question with an accepted alternative) and the ground truth of
every page (`truth.json`, see `omr.synth`).  Same script, same bytes.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from omr.layout import load_layout
from omr.synth import ScanDamage, SynthCard, random_card_spec, synth_card, write_pages

SEED = 20260901


@dataclass(frozen=True)
class Sample:
    """One page to make: its file, the candidate's version and skill, spec/damage tweaks."""

    file: str
    version: str
    skill: float
    damage: ScanDamage
    mix: dict[str, Any] = field(default_factory=dict)
    spec_changes: dict[str, Any] = field(default_factory=dict)


def make_key(rng: np.random.Generator, questions: int, options: str) -> dict[str, Any]:
    """Spec section 4 key: master key = version A; version B asks the questions shuffled."""
    key_a = "".join(rng.choice(list(options), questions))
    order = [int(q) for q in rng.permutation(questions) + 1]  # card position -> master number
    key_b = "".join(key_a[m - 1] for m in order)
    alternative = next(o for o in options if o != key_a[44])
    return {
        "exam": "LEK",
        "session": "2026-09",
        "questions": questions,
        "versions": {"A": {"key": key_a}, "B": {"key": key_b, "order": order}},
        "annulled": [17],
        "accepted": {"45": "".join(sorted(key_a[44] + alternative))},
        "annulled_policy": "exclude",
        "pass_percent": 56,
    }


def intended_answers(rng: np.random.Generator, key: str, options: str, skill: float) -> str:
    """What a candidate of this ``skill`` means to answer: right, wrong or skipped."""
    out = []
    for right in key:
        u = rng.random()
        if u < skill:
            out.append(right)
        elif u < 0.97:
            out.append(rng.choice([o for o in options if o != right]))
        else:
            out.append("-")
    return "".join(out)


def samples() -> list[Sample]:
    clean = dict(blur_sigma_mm=0.035, noise_sigma=1.5, brightness=-4.0, contrast=0.95)
    return [
        Sample("card-01.jpg", "A", 0.82, ScanDamage(dpi=300, jpeg_quality=85, offset_mm=(1.5, 2.0),
                                                     margin_mm=(1.0, 0.5), rotation_deg=0.6,
                                                     **clean)),
        Sample("card-02.jpg", "B", 0.64, ScanDamage(dpi=200, jpeg_quality=85, rotation_deg=-1.2,
                                                     offset_mm=(3.0, 1.0), **clean),
               mix={"correction": 0.06}),
        Sample("card-03.png", "A", 0.48, ScanDamage(dpi=200, blur_sigma_mm=0.03),
               mix={"blank": 0.12}),
        Sample("card-04.jpg", "B", 0.75, ScanDamage(dpi=300, jpeg_quality=80, upside_down=True,
                                                     rotation_deg=1.5, offset_mm=(2.0, 4.0),
                                                     **clean)),
        Sample("batch-05.tif", "A", 0.70, ScanDamage(dpi=200, blur_sigma_mm=0.03, bed="dark",
                                                      offset_mm=(4.0, 4.0), margin_mm=(4.0, 4.0))),
        Sample("batch-05.tif", "B", 0.58, ScanDamage(dpi=200, bitonal=True, bitonal_threshold=150,
                                                      blur_sigma_mm=0.04, noise_sigma=4.0,
                                                      rotation_deg=-2.0)),
        Sample("batch-06.pdf", "A", 0.90, ScanDamage(dpi=200, jpeg_quality=75, rotation_deg=0.9,
                                                      **clean)),
        Sample("batch-06.pdf", "A", 0.55, ScanDamage(dpi=200, jpeg_quality=75, rotation_deg=-0.4,
                                                      **clean),
               mix={"half": 0.03, "residue": 0.02, "faint": 0.02},
               spec_changes={"barcode_damage": "stroke"}),
        Sample("card-07.jpg", "B", 0.66,
               ScanDamage(dpi=200, jpeg_quality=70, rotation_deg=6.5, bed="dark", color=True,
                          offset_mm=(8.0, 5.0), margin_mm=(6.0, 9.0), perspective=0.004,
                          blur_sigma_mm=0.07, noise_sigma=5.0, brightness=-18.0, contrast=0.85),
               mix={"correction": 0.05, "grid_empty": 0.0, "grid_mismatch": 0.0,
                    "grid_ambiguous": 0.0},
               spec_changes={"barcode_damage": "covered"}),
        Sample("card-08.jpg", "A", 0.60, ScanDamage(dpi=200, jpeg_quality=85, **clean),
               mix={"grid_mismatch": 1.0, "version_none": 1.0, "multiple": 0.03}),
    ]


def make(out: Path) -> list[Path]:
    """Write the sample batch into ``out``; returns the files written."""
    layout = load_layout()
    rng = np.random.default_rng(SEED)
    options = layout.answers.options
    key = make_key(rng, layout.answers.questions, options)
    out.mkdir(parents=True, exist_ok=True)
    base_mix = {"grid_empty": 0.0, "grid_mismatch": 0.0, "grid_ambiguous": 0.0,
                "barcode_stroke": 0.0, "barcode_smudge": 0.0, "barcode_covered": 0.0,
                "version_none": 0.0, "version_two": 0.0, "max_stray_lines": 2, "max_specks": 6}
    pages: dict[str, list[SynthCard]] = {}
    for i, s in enumerate(samples()):
        card_rng = np.random.default_rng([SEED, i])
        answers = intended_answers(card_rng, key["versions"][s.version]["key"], options, s.skill)
        spec = random_card_spec(layout, card_rng, answers=answers, version=s.version,
                                **{**base_mix, **s.mix})
        spec = replace(spec, **s.spec_changes)
        seed = np.random.SeedSequence([SEED, i])
        pages.setdefault(s.file, []).append(synth_card(layout, spec, s.damage, seed=seed))

    written, truths = [], []
    for name, cards in pages.items():
        path = write_pages(out / name, cards)
        written.append(path)
        for page, card in enumerate(cards, start=1):
            truths.append({**card.truth, "source": name, "page": page})

    # a scan that broke off in transfer: the reader must report it as an error row
    whole = (out / "card-07.jpg").read_bytes()
    broken = out / "broken-scan.jpg"
    broken.write_bytes(whole[: len(whole) * 2 // 5])
    written.append(broken)
    truths.append({"source": broken.name, "page": 1, "expected_status": "error",
                   "note": "truncated JPEG: the file ends after 40% of its bytes"})

    # readable key: one field a line, the 200-number order list on one line
    order = key["versions"]["B"]["order"]
    text = json.dumps({**key, "versions": {**key["versions"], "B": {**key["versions"]["B"],
                                                                     "order": "@ORDER@"}}},
                      indent=1)
    text = text.replace('"@ORDER@"', json.dumps(order))
    (out / "key.json").write_text(text + "\n", encoding="utf-8")
    # one page record per line: readable with grep, diffable
    lines = ",\n".join(json.dumps(t, separators=(",", ":")) for t in truths)
    (out / "truth.json").write_text(f"[\n{lines}\n]\n", encoding="utf-8")
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "sample_scans")
    args = parser.parse_args()
    for path in make(args.out):
        print(f"{path}  {path.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
