"""Reading accuracy on cards damaged by a third-party scan simulator (Augraphy).

Our own generator (`omr.synth`) cannot surprise us; Augraphy's effects were written by
other people: dirty rollers and drums, stains, ink bleed, low-ink lines, dithering,
lighting gradients, shadows, folds, photocopy speckle, JPEG.  Cards are drawn clean by
`omr.synth` (truth known) and then passed through Augraphy.

Augraphy is not a dependency of the product (it pulls in numba, scikit-learn and a
second OpenCV): run this in its own environment::

    python3 -m venv /tmp/augenv
    /tmp/augenv/bin/pip install augraphy pyzbar click pypdfium2 tqdm python-barcode
    /tmp/augenv/bin/pip install -e . --no-deps
    /tmp/augenv/bin/python bench/scan_simulator.py --count 40 --seed 11 [--pipeline scanner|default]

Augraphy's randomness is not all seeded, so two runs of the same seed differ a little.
To compare two versions of the reader on the same damaged images, save them once and
read them again (no Augraphy needed then; the project's own venv will do)::

    /tmp/augenv/bin/python bench/scan_simulator.py --count 80 --seed 23 --save /tmp/aug23
    .venv/bin/python bench/scan_simulator.py --count 80 --seed 23 --reread /tmp/aug23

``scanner`` (default) is a pipeline of effects real scanners and copiers have, each
with Augraphy's default strengths; ``default`` is Augraphy's own default pipeline,
which also erases ink, overlays stamps and tears pages (truth is then partly
unknowable: a mark the simulator erased is "misread" by any reader).

Reported: status counts, silent errors (a wrong read, code or version on an ``ok``
card), wrong reads not shown as '?' on any card, the '?' rate and the flags.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from collections import Counter

import cv2
import numpy as np

from omr.errors import OmrError
from omr.layout import load_layout
from omr.reader import read_card
from omr.synth import ScanDamage, random_card_spec, synth_card


def scanner_pipeline():  # noqa: ANN201 - augraphy types
    import augraphy as ag

    ink = [
        ag.InkBleed(p=0.3),
        ag.OneOf([ag.LowInkPeriodicLines(), ag.LowInkRandomLines()], p=0.2),
        ag.Dithering(p=0.1),
    ]
    paper = [ag.ColorPaper(p=0.3), ag.NoiseTexturize(p=0.3), ag.BrightnessTexturize(p=0.3), ag.Stains(p=0.1)]
    post = [ag.OneOf([ag.DirtyRollers(), ag.DirtyDrum()], p=0.3), ag.SubtleNoise(p=0.5),
            ag.OneOf([ag.LightingGradient(), ag.ShadowCast()], p=0.3),
            ag.Geometric(rotate_range=(-6, 6), p=0.5), ag.OneOf([ag.Faxify(), ag.BadPhotoCopy()], p=0.2),
            ag.Folding(p=0.1), ag.Brightness(p=0.3), ag.Jpeg(p=0.5)]  # fmt: skip
    return ag.AugraphyPipeline(ink_phase=ink, paper_phase=paper, post_phase=post)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--dpi", type=float, default=200.0)
    parser.add_argument("--pipeline", choices=("scanner", "default"), default="scanner")
    parser.add_argument(
        "--save",
        metavar="DIR",
        help="write each damaged card as DIR/card-NN.png and "
        "print a line per card (status, '?', wrong reads not shown as '?', why)",
    )
    parser.add_argument(
        "--reread",
        metavar="DIR",
        help="read the cards a run with --save wrote to DIR (same --count and --seed) "
        "instead of damaging new ones; prints a line per card",
    )
    args = parser.parse_args()
    if args.save:
        os.makedirs(args.save, exist_ok=True)
    if args.reread:
        ag = None
        version = "(saved cards)"
    else:
        import augraphy as ag

        version = ag.__version__
    per_card = bool(args.save or args.reread)

    layout = load_layout()
    rng = np.random.default_rng(args.seed)
    random.seed(args.seed)
    np.random.seed(args.seed)  # noqa: NPY002 - augraphy draws from the global generators
    status, errors, flags = Counter(), Counter(), Counter()
    silent = unmarked = question_marks = questions = 0
    for i in range(args.count):
        spec = random_card_spec(layout, rng)
        card = synth_card(layout, spec, ScanDamage(dpi=args.dpi), seed=args.seed * 1000 + i)
        if args.reread:
            gray = cv2.imread(os.path.join(args.reread, f"card-{i:02d}.png"), cv2.IMREAD_GRAYSCALE)
            if gray is None:  # Augraphy failed on it when the set was saved
                continue
        else:
            pipeline = scanner_pipeline() if args.pipeline == "scanner" else ag.default_augraphy_pipeline()
            try:
                damaged = pipeline(cv2.cvtColor(card.image, cv2.COLOR_GRAY2BGR))
            except Exception as err:  # noqa: BLE001 - a simulator bug is not ours to count
                print(f"card {i}: augraphy failed ({err!r}); skipped", file=sys.stderr)
                continue
            gray = damaged if damaged.ndim == 2 else cv2.cvtColor(damaged, cv2.COLOR_BGR2GRAY)
        truth = card.truth
        if args.save:
            cv2.imwrite(os.path.join(args.save, f"card-{i:02d}.png"), gray)
        try:
            reading = read_card(gray, layout)
        except OmrError as err:
            status["error"] += 1
            errors[type(err).__name__] += 1
            if per_card:
                print(f"card-{i:02d}: error {type(err).__name__}: {err}")
            continue
        ok = not reading.needs_review
        status["ok" if ok else "review"] += 1
        wrong = [q for q, ch in enumerate(reading.responses) if ch not in truth["acceptable"][q]]
        unmarked += sum(reading.responses[q] != "?" for q in wrong)
        question_marks += reading.responses.count("?")
        questions += len(reading.responses)
        if ok:
            silent += len(wrong) + (reading.code_number != truth["code_number"])
            silent += reading.version != (truth["version"] or "")
        for flag in reading.flags:
            flags[flag.split(":")[0]] += 1
        if per_card:
            print(
                f"card-{i:02d}: {'ok' if ok else 'review'}, '?' {reading.responses.count('?')}, "
                f"wrong not '?' {sum(reading.responses[q] != '?' for q in wrong)} "
                f"(questions {[q + 1 for q in wrong if reading.responses[q] != '?'][:12]}), "
                f"flags {[f[:30] for f in reading.flags]}"
            )
    print(f"scan simulator: Augraphy {version} '{args.pipeline}' pipeline, {args.count} cards, "
          f"seed {args.seed}, {args.dpi:.0f} DPI")  # fmt: skip
    print(f"  ok {status['ok']}  review {status['review']}  error {status['error']} {dict(errors)}")
    print(f"  silent errors on ok cards (answers + codes + versions): {silent}")
    print(f"  wrong reads not shown as '?' on any card: {unmarked}")
    print(f"  '?' on {question_marks} of {questions} questions read "
          f"({100 * question_marks / max(questions, 1):.2f} %)")  # fmt: skip
    print("  flags: " + ", ".join(f"{k} {v}" for k, v in flags.most_common()))
    return 1 if silent else 0


if __name__ == "__main__":
    sys.exit(main())
