"""Every reading of a fixed set of synthetic cards, saved, to show a refactor changes none.

    .venv/bin/python bench/regression.py --out /tmp/before.json
    .venv/bin/python bench/regression.py --out /tmp/after.json --compare /tmp/before.json

Generates ``--count`` cards (half mild damage, half heavy; fixed seeds, so the same
cards every run), reads each with `omr.reader.read_card` and writes, per card, the
responses, code number, version, flags, status and every box state (or the error
type).  With ``--compare`` it prints the cards whose reading differs from the saved
file and exits 1 when any does; ``--features`` saves the feature matrices' digests
too, to catch a change below the box states.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys

import cv2
import numpy as np
from threadpoolctl import threadpool_limits

from omr.errors import OmrError
from omr.grid import build_sampling_grid
from omr.layout import load_layout
from omr.reader import read_card
from omr.synth import random_card_spec, random_damage, synth_card


def readings(count: int, seed: int, features: bool) -> list[dict]:
    """One record per card: what `read_card` made of it."""
    layout = load_layout()
    grid = build_sampling_grid(layout)
    out = []
    for preset in ("mild", "heavy"):
        rng = np.random.default_rng([seed, preset == "heavy"])
        for i in range(count // 2):
            spec = random_card_spec(layout, rng)
            damage = random_damage(rng, preset)
            card = synth_card(layout, spec, damage, seed=[seed, i, preset == "heavy"])
            image = card.image if card.image.ndim == 2 else cv2.cvtColor(card.image, cv2.COLOR_BGR2GRAY)
            record: dict = {"card": f"{preset}-{i}"}
            try:
                r = read_card(image, layout, grid=grid)
            except OmrError as err:
                record["error"] = type(err).__name__
            else:
                record.update(
                    responses=r.responses,
                    code=r.code_number,
                    version=r.version,
                    flags=list(r.flags),
                    review=r.needs_review,
                    states="".join(map(str, r.box_states.tolist())),
                )
                if features:
                    record["features"] = hashlib.blake2b(r.box_features.tobytes(), digest_size=8).hexdigest()
            out.append(record)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=140)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--compare", default=None, help="a JSON written before, to compare with")
    parser.add_argument("--features", action="store_true", help="save digests of the feature matrices")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    threadpool_limits(limits=1)
    now = readings(args.count, args.seed, args.features)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(now, f, indent=0)
    if args.compare is None:
        print(f"{len(now)} cards written to {args.out}")
        return 0
    with open(args.compare, encoding="utf-8") as f:
        before = {r["card"]: r for r in json.load(f)}
    changed = 0
    for record in now:
        old = before.get(record["card"])
        if old == record:
            continue
        changed += 1
        if old is None:
            print(f"{record['card']}: not in {args.compare}")
            continue
        for key in sorted(set(old) | set(record)):
            if old.get(key) != record.get(key):
                a, b = old.get(key), record.get(key)
                if key == "states" and a and b:
                    where = [k for k, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
                    print(f"{record['card']}: states differ at boxes {where[:20]}")
                else:
                    print(f"{record['card']}: {key} {a!r} -> {b!r}")
    print(f"{len(now)} cards, {changed} differ from {args.compare}")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
