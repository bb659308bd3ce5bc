"""Reading time of one card on one core, next to the time to merely decode its JPEG.

    .venv/bin/python bench/read_vs_decode.py --count 30 --dpi 300

Generates mildly damaged cards as JPEG files (q 70-95, what an office scanner
writes), then times, on CPU time of this process (so other load on the machine
counts less): decoding every file with ``cv2.imread(..., IMREAD_GRAYSCALE)``, and
``read_card`` on the decoded pages.  Best of three passes.
"""

from __future__ import annotations

import argparse
import glob
import os
import tempfile
import time

import cv2
from threadpoolctl import threadpool_limits

from omr.grid import build_sampling_grid
from omr.layout import load_layout
from omr.reader import read_card
from omr.synth import write_dataset


def best_cpu_ms(fn, passes: int, n: int) -> float:
    best = float("inf")
    for _ in range(passes):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return 1000 * best / n


def _decode_each(files: list[str]) -> None:
    """Decode every file, keeping none: a batch frees each page before the next, so the
    allocator hands the decoder the same memory again.  (Keeping all the pages made
    every decode fault in fresh memory: ~+3 ms a page of system time, which flattered
    the ratio.)"""
    for f in files:
        if cv2.imread(f, cv2.IMREAD_GRAYSCALE) is None:
            raise SystemExit(f"cannot decode {f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=30)
    parser.add_argument("--dpi", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    # one thread of each library, as in a batch worker: OpenBLAS's idle threads would
    # otherwise spin on another core and count as this process's CPU time
    cv2.setNumThreads(1)
    threadpool_limits(limits=1)
    layout = load_layout()
    grid = build_sampling_grid(layout)
    with tempfile.TemporaryDirectory() as folder:
        write_dataset(folder, args.count, seed=args.seed, formats=("jpg",), damage="mild", dpi=args.dpi)
        files = sorted(glob.glob(os.path.join(folder, "*.jpg")))
        decode = best_cpu_ms(lambda: _decode_each(files), 3, len(files))
        pages = [cv2.imread(f, cv2.IMREAD_GRAYSCALE) for f in files]
        read = best_cpu_ms(lambda: [read_card(p, layout, grid=grid) for p in pages], 3, len(files))
    print(
        f"{len(files)} cards at {args.dpi:.0f} DPI, one core (CPU time): decode {decode:.1f} ms, "
        f"read {read:.1f} ms, decode+read = {(decode + read) / decode:.2f}x decode"
    )


if __name__ == "__main__":
    main()
