"""The review station's speed for an examiner: time per decision and card screen load.

Usage::

    .venv/bin/python bench/review.py [--cards 20] [--doubts 5] [--dpi 200] [--with-scan 60]
                                     [--write-results]

1. Renders ``--cards`` cards at ``--dpi`` with ``--doubts`` light boxes each (read ``?``)
   and scans them into a fresh store (``omr scan --db``).
2. Serves ``omr review`` on a free loopback port (waitress, in a thread) and drives
   Debian's headless Chromium through Playwright as a scripted examiner: opens each card
   from the queue (the *card screen load*: navigation until the page, its grid, the
   crops and the panel are there), resolves each ``?`` by keyboard (letter, Enter: the
   *decision round trip*: key press until the new panel with the new audit row is
   shown), finalises with Enter (until the next card's screen is ready).
3. With ``--with-scan N``, all of it once more in a new store while an ``omr scan`` of N
   more cards writes the same store (the scanner stays the writer of readings, the app
   writes events).

``--screenshots docs`` only takes the README's pictures (the queue, a card screen).

Prints medians and 90th percentiles; ``--write-results`` replaces the ``## Review
station`` section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

from omr.decode import luhn_check_digit  # noqa: E402
from omr.layout import load_layout  # noqa: E402
from omr.render import render_card  # noqa: E402

KEY = {
    "exam": "LEK",
    "session": "bench",
    "questions": 200,
    "versions": {"A": {"key": "ABCDE" * 40}},
    "pass_percent": 56,
}


def _code(i: int) -> str:
    body = f"{20000000 + 7919 * i:08d}"[-8:]
    return body + luhn_check_digit(body)


def _box(img: np.ndarray, center_mm: np.ndarray, dpi: float, value: int) -> None:
    s = dpi / 25.4
    x, y = center_mm
    cv2.rectangle(
        img, (int((x - 1.7) * s), int((y - 1.2) * s)), (int((x + 1.7) * s), int((y + 1.2) * s)), value, -1
    )


def make_cards(folder: Path, n: int, doubts: int, dpi: float, seed: int, first: int = 0) -> None:
    """``n`` filled cards, each with ``doubts`` questions holding only a light box (``?``)."""
    layout = load_layout()
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    centers = layout.answers.centers()
    for i in range(first, first + n):
        code = _code(i)
        img = render_card(layout, code, dpi=dpi)
        doubtful = set(rng.choice(layout.questions, size=doubts, replace=False).tolist())
        for q in range(layout.questions):
            k = int(rng.integers(0, 5))
            _box(img, centers[q, 2 if q in doubtful else k], dpi, 170 if q in doubtful else 50)
        g = layout.code_grid.centers()
        for j, d in enumerate(code):
            _box(img, g[j, int(d)], dpi, 50)
        _box(img, layout.version.centers()[0], dpi, 50)
        assert cv2.imwrite(str(folder / f"card-{i:04d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 90])


def _omr() -> str:
    return str(Path(sys.executable).parent / "omr")


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def run(args: argparse.Namespace) -> dict:
    from playwright.sync_api import expect, sync_playwright

    from omr.review.app import ServerThread, create_app
    from omr.review.results import resolved_rows
    from omr.review.service import ReviewService

    work = Path(args.data or tempfile.mkdtemp(prefix="omr-bench-review-"))
    key = work / "key.json"
    key.write_text(json.dumps(KEY))
    db = work / "results.sqlite"
    make_cards(work / "scans", args.cards, args.doubts, args.dpi, seed=1)
    subprocess.run(
        [_omr(), "scan", str(work / "scans"), "--key", str(key), "--db", str(db), "--workers", "1"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    scanner = None
    if args.with_scan:
        make_cards(work / "more", args.with_scan, args.doubts, args.dpi, seed=2, first=10_000)
        scanner = subprocess.Popen(
            [_omr(), "scan", str(work / "more"), "--key", str(key), "--db", str(db), "--workers", "1"],
            stdout=subprocess.DEVNULL,
        )
    service = ReviewService(db, load_layout())
    server = ServerThread(create_app(service), "127.0.0.1", 0, threads=4)
    url = f"http://127.0.0.1:{server.port}"
    decisions: list[float] = []
    loads: list[float] = []
    finalise_to_next: list[float] = []
    t_start = time.perf_counter()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium")
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(15000)
            page.goto(url + "/")
            page.fill("#name", "bench")
            page.click("button[type=submit]")
            page.wait_for_selector("table.queue")
            ids = [int(r.get_attribute("data-card")) for r in page.locator("table.queue tbody tr").all()]
            page.keyboard.press("Enter")  # the queue's "start with the worst card"
            page.wait_for_selector("body[data-ready='1'] #panel")
            for _ in ids[: args.cards]:
                items = page.locator("#panel .item").count()
                for _ in range(items):
                    q = int(page.locator(".item.active").get_attribute("data-question"))
                    n = page.locator("#audit tbody tr").count()
                    t0 = time.perf_counter()
                    page.keyboard.press(KEY["versions"]["A"]["key"][q - 1])
                    page.keyboard.press("Enter")
                    expect(page.locator("#audit tbody tr")).to_have_count(n + 1)
                    page.wait_for_selector("body[data-ready='1'] #panel")
                    decisions.append(time.perf_counter() - t0)
                here = page.url
                t0 = time.perf_counter()
                page.keyboard.press("Enter")
                page.wait_for_url(lambda u, here=here: u != here)
                page.wait_for_load_state("load")
                finalise_to_next.append(time.perf_counter() - t0)
            # card screen loads, cold in a new browser context (the app keeps only a few pages decoded)
            fresh = browser.new_context(viewport={"width": 1400, "height": 900})
            again = fresh.new_page()
            again.goto(url + "/")
            again.fill("#name", "bench-viewer")
            again.click("button[type=submit]")
            for row_id in ids[: args.cards]:
                t0 = time.perf_counter()
                again.goto(f"{url}/card/{row_id}", wait_until="load")
                again.wait_for_selector("body[data-ready='1'] #panel")
                loads.append(time.perf_counter() - t0)
            browser.close()
    finally:
        server.stop()
        if scanner is not None:
            scanner.wait(timeout=600)
    elapsed = time.perf_counter() - t_start
    with service.store() as store:
        verified = sum(1 for r in resolved_rows(store) if r.status == "verified")
    return {
        "cards": args.cards,
        "doubts": args.doubts,
        "dpi": args.dpi,
        "with_scan": args.with_scan,
        "decisions": len(decisions),
        "decision_median_ms": 1e3 * statistics.median(decisions),
        "decision_p90_ms": 1e3 * _pct(decisions, 90),
        "decision_max_ms": 1e3 * max(decisions),
        "load_median_ms": 1e3 * statistics.median(loads),
        "load_p90_ms": 1e3 * _pct(loads, 90),
        "finalise_next_median_ms": 1e3 * statistics.median(finalise_to_next),
        "finalise_next_p90_ms": 1e3 * _pct(finalise_to_next, 90),
        "verified": verified,
        "elapsed_s": elapsed,
        "scan_exit": None if scanner is None else scanner.returncode,
    }


def screenshots(out: Path) -> None:
    """The README's pictures: the queue and a card screen half-way through, as PNGs in ``out``."""
    from playwright.sync_api import expect, sync_playwright

    from omr.review.app import ServerThread, create_app
    from omr.review.service import ReviewService

    work = Path(tempfile.mkdtemp(prefix="omr-review-shots-"))
    (work / "key.json").write_text(json.dumps(KEY))
    make_cards(work / "scans", 6, 3, 200, seed=3)
    subprocess.run(
        [
            _omr(),
            "scan",
            str(work / "scans"),
            "--key",
            str(work / "key.json"),
            "--db",
            str(work / "r.sqlite"),
            "--workers",
            "1",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    server = ServerThread(create_app(ReviewService(work / "r.sqlite", load_layout())), "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.port}"
    out.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium")
            page = browser.new_page(viewport={"width": 1400, "height": 1150})
            page.goto(url + "/")
            page.fill("#name", "Anna Nowak")
            page.click("button[type=submit]")
            page.wait_for_selector("table.queue")
            page.screenshot(path=str(out / "review-queue.png"))
            page.keyboard.press("Enter")
            page.wait_for_selector("body[data-ready='1'] #panel")
            q = int(page.locator(".item.active").get_attribute("data-question"))
            page.keyboard.press(KEY["versions"]["A"]["key"][q - 1])
            page.keyboard.press("Enter")
            expect(page.locator("#audit tbody tr")).to_have_count(1)
            page.wait_for_load_state("networkidle")
            page.keyboard.press("C")  # a pick shown, not yet confirmed
            page.screenshot(path=str(out / "review-card.png"))
            browser.close()
    finally:
        server.stop()


def _section(results: list[dict], command: str) -> str:
    lines = [
        "## Review station",
        "",
        f"`{command}` ({time.strftime('%Y-%m-%d')}, this 2-core machine; a scripted examiner in",
        "Debian's headless Chromium through Playwright, the server in the same process). *Decision*:",
        "letter +",
        "Enter until the new panel with its audit row is shown (one POST, the event written, the card",
        "re-resolved and re-scored). *Card load*: navigation to a card until the page image, the grid, the",
        "crops and the panel are there",
        "(each card once more after the run, in a fresh browser context: nothing cached in the browser).",
        "*Finalise → next*: Enter on a resolved card until the next card's screen has loaded.",
        "",
        "| run | decisions | decision median / p90 / max | card load median / p90 "
        "| finalise → next median / p90 | verified |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        name = f"{r['cards']} cards × {r['doubts']} `?`, {r['dpi']:g} DPI" + (
            f", `omr scan` of {r['with_scan']} more cards writing the store meanwhile (exit {r['scan_exit']})"
            if r["with_scan"]
            else ""
        )
        lines.append(
            f"| {name} | {r['decisions']} | {r['decision_median_ms']:.0f} / {r['decision_p90_ms']:.0f} / "
            f"{r['decision_max_ms']:.0f} ms | {r['load_median_ms']:.0f} / {r['load_p90_ms']:.0f} ms | "
            f"{r['finalise_next_median_ms']:.0f} / {r['finalise_next_p90_ms']:.0f} ms | {r['verified']} |"
        )
    lines.append("")
    return "\n".join(lines)


def _write_section(text: str) -> None:
    path = Path(__file__).parent / "RESULTS.md"
    old = path.read_text(encoding="utf-8")
    start = old.find("## Review station")
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        end = old.find("\n## ", start + 1)
        new = old[:start] + text + ("" if end < 0 else old[end + 1 :])
    path.write_text(new, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cards", type=int, default=20)
    parser.add_argument("--doubts", type=int, default=5)
    parser.add_argument("--dpi", type=float, default=200)
    parser.add_argument("--with-scan", type=int, default=0, help="cards an 'omr scan' writes meanwhile")
    parser.add_argument("--data", help="working folder (default: a new temporary one)")
    parser.add_argument("--write-results", action="store_true")
    parser.add_argument("--screenshots", metavar="DIR", help="only take the README's screenshots into DIR")
    args = parser.parse_args()
    if args.screenshots:
        screenshots(Path(args.screenshots))
        return
    results = [run(argparse.Namespace(**{**vars(args), "with_scan": 0, "data": None}))]
    if args.with_scan:  # once more while a scan writes the same store
        results.append(run(argparse.Namespace(**{**vars(args), "data": None})))
    for r in results:
        print(json.dumps(r, indent=1))
    if args.write_results:
        command = "python bench/review.py " + " ".join(a for a in sys.argv[1:] if a != "--write-results")
        _write_section(_section(results, command.strip()))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
