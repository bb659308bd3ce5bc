"""The `omr` command line: a thin click layer over the pipeline, scoring and store.

Exit codes (`main`; each `omr.errors.OmrError` class carries its ``exit_code``):

    0    success
    1    some page ended as ``error`` (or, in ``inspect``/``calibrate``, no card was readable)
    2    usage: a bad option or argument, a broken answer key, layout, thresholds or
         results file
    3    environment fault: the store locked, full, read-only or corrupt, an output file
         that cannot be written, a library or a Dask scheduler missing (`EnvironmentFault`)
    130  interrupted (Ctrl-C, SIGTERM): says how many pages are stored and that running
         the same command again resumes

Every failure is one message on stderr naming the file and what to do, never a traceback.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click

from omr.errors import Interrupted, OmrError, OutputError

if TYPE_CHECKING:  # the CLI imports its heavy modules inside the commands
    from omr.layout import CardLayout
    from omr.pages import PageRef
    from omr.store import ResultStore
    from scoring import AnswerKey


@click.group()
@click.version_option(package_name="omr-karta")
def cli() -> None:
    """Read and score LEK/LDEK answer cards (karta testowa)."""


def _load_layout(ctx: click.Context, param: click.Parameter, value: str | None) -> CardLayout | None:
    """``--layout``: a shipped layout's name or a layout JSON file, loaded (None when not given).

    A name that is neither shipped nor a file, or a broken file, is a `LayoutError`
    (``main`` prints it and exits 2, a usage error).
    """
    if value is None:
        return None
    from omr.layout import load_layout

    return load_layout(value)


_layout_option = click.option(
    "--layout", "layout_path", metavar="NAME|PATH", callback=_load_layout,
    help="Card layout: a shipped one by name (lek-ldek-v1, cem-100, pes-120; 'omr layouts' lists them) "
         "or a layout JSON file.  [default: lek-ldek-v1, or the store's own with --db]",
)


def _layout(layout: CardLayout | None) -> CardLayout:
    from omr.layout import load_layout

    return layout if layout is not None else load_layout()


# -- reader: inspect a page, calibrate a batch -----------------------------------------


def _pick_page(path: str, page: int) -> PageRef:
    from omr.pages import iter_pages

    for ref in iter_pages([path]):
        if ref.page == page:
            return ref
    raise click.BadParameter(f"{path} has no page {page}", param_hint="--page")


@contextlib.contextmanager
def _writing(what: str, path: str) -> Iterator[None]:
    """An `OSError` inside becomes the `OutputError` for writing ``path``."""
    try:
        yield
    except OSError as err:
        raise OutputError.writing(what, path, err) from err


def _write_overlay(cv2: Any, path: str, image: Any) -> None:
    """``cv2.imwrite``, which only says False: find out why for the message."""
    import os

    with _writing("overlay", path):
        if cv2.imwrite(path, image):
            return
        with open(path, "ab"):  # raises the OSError saying why, if there is one
            pass
        if not os.path.getsize(path):
            os.unlink(path)
    raise OutputError(f"cannot write overlay {path}: OpenCV cannot encode that file type; give a .png path")


@cli.command()
@click.argument("page_file", metavar="PAGE", type=click.Path(exists=True, dir_okay=False))
@click.option("--page", "page_number", type=click.IntRange(min=1), default=1, show_default=True,
              help="Page of a multi-page TIFF/PDF.")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="Overlay PNG to write.")
@click.option("--fills", "fills_path", type=click.Path(dir_okay=False),
              help="Also write every box's features and state as CSV.")
@_layout_option
@click.option("--thresholds", "thresholds_path", type=click.Path(exists=True, dir_okay=False),
              help="Thresholds from 'omr calibrate' (default: learned from this card).")
def inspect(page_file: str, page_number: int, out: str, fills_path: str | None,
            layout_path: CardLayout | None, thresholds_path: str | None) -> None:
    """What the machine saw on one PAGE: overlay picture, fills, reads and flags."""
    import cv2

    from calibration import load_thresholds
    from omr.grid import FEATURE_NAMES, Feature
    from omr.overlay import draw_overlay
    from omr.pages import load_page
    from omr.reader import read_card

    layout = _layout(layout_path)
    ref = _pick_page(page_file, page_number)
    gray = load_page(ref)
    thresholds = load_thresholds(thresholds_path) if thresholds_path else None
    reading = read_card(gray, layout, thresholds=thresholds)
    _write_overlay(cv2, out, draw_overlay(gray, reading, layout))
    click.echo(f"{page_file} page {page_number}: {'review' if reading.needs_review else 'ok'}")
    click.echo(f"  code number {reading.code_number or '-'} (barcode {reading.barcode or '-'}, "
               f"grid {reading.grid}), version {reading.version or '-'}, turned {reading.rotation_deg}"
               + (f", part {reading.part or '-'}" if layout.parts is not None else ""))
    click.echo(f"  flags: {';'.join(reading.flags) or 'none'}")
    click.echo(f"  thresholds ({reading.thresholds.source}): fill {reading.thresholds.fill_blank}"
               f"..{reading.thresholds.fill_mark}, stroke {reading.thresholds.stroke_mark}")
    width = len(layout.options)
    first = (int(reading.part) - 1) * layout.questions if reading.part else 0  # part 2: 101..200
    for start in range(0, layout.questions, 50):
        click.echo(f"  {first + start + 1:3d}-{first + min(start + 50, layout.questions):3d} "
                   f"{reading.responses[start:start + 50]}")
    doubtful = [q for q, ch in enumerate(reading.responses) if ch in "?*"]
    for q in doubtful:
        fills = reading.box_features[q * width:(q + 1) * width, Feature.FILL]
        shown = " ".join(f"{opt}={100 * f:.0f}%" for opt, f in zip(layout.options, fills, strict=True))
        click.echo(f"  question {first + q + 1}: read {reading.responses[q]!r}, fill {shown}")
    click.echo(f"  overlay written to {out}")
    if fills_path:
        import csv

        slices = layout.box_slices()
        with _writing("box features", fills_path), open(fills_path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["part", "index", "option", *FEATURE_NAMES, "state"])
            for k in range(reading.box_features.shape[0]):
                if k < slices["answers"].stop:
                    part, index, option = "answer", k // width + 1, layout.options[k % width]
                elif k < slices["code"].stop:
                    j, d = divmod(k - slices["code"].start, layout.code_grid.rows)
                    part, index, option = "code", j + 1, layout.code_grid.row_labels[d]
                elif "part" in slices and k >= slices["part"].start:
                    part, index, option = "part", 1, str(k - slices["part"].start + 1)
                else:
                    part, index, option = "version", 1, layout.version.labels[k - slices["version"].start]
                writer.writerow([part, index, option, *(f"{v:.4f}" for v in reading.box_features[k]),
                                 "blank marked ambiguous".split()[reading.box_states[k]]])
        click.echo(f"  box features written to {fills_path}")


@cli.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--out", type=click.Path(dir_okay=False), help="Write the thresholds JSON here.")
@_layout_option
@click.option("--max-pages", type=click.IntRange(min=1), default=500, show_default=True,
              help="Learn from at most this many pages (evenly spread).")
def calibrate(inputs: tuple[str, ...], out: str | None, layout_path: CardLayout | None, max_pages: int) -> None:
    """Learn mark thresholds from a batch (INPUT: files, folders, globs) and print them.

    Use the result with 'omr scan --thresholds FILE' so every card of the batch is
    judged by the same levels.
    """
    import numpy as np

    from calibration import save_thresholds
    from calibration.learn import calibrate as learn
    from omr.errors import OmrError
    from omr.grid import Feature, build_sampling_grid
    from omr.pages import iter_pages, load_page
    from omr.reader import measure_card

    layout = _layout(layout_path)
    grid = build_sampling_grid(layout)
    refs = list(iter_pages(inputs))
    step = max(1, len(refs) // max_pages)
    answers = layout.box_slices()["answers"]
    stacks, skipped = [], 0
    for ref in refs[::step][:max_pages]:
        try:
            stacks.append(measure_card(load_page(ref), layout, grid=grid).features[answers])
        except OmrError as err:
            skipped += 1
            click.echo(f"  skipped {ref.source} page {ref.page}: {type(err).__name__}: {err}", err=True)
    if not stacks:
        raise click.ClickException("no readable card among the inputs; nothing to learn from")
    features = np.concatenate(stacks)
    thresholds = learn(features, source=f"batch:{len(stacks)} cards")
    fill = features[:, Feature.FILL]
    click.echo(f"calibrated on {len(stacks)} cards ({skipped} skipped), {len(fill)} answer boxes")
    click.echo(f"  blank boxes: fill p50 {np.percentile(fill[fill <= np.median(fill)], 50):.3f}, "
               f"p99.5 {np.percentile(fill[fill <= np.median(fill)], 99.5):.3f}")
    marked = fill >= thresholds.fill_mark
    if marked.any():
        click.echo(f"  marked boxes: {int(marked.sum())}, fill p10 {np.percentile(fill[marked], 10):.3f}, "
                   f"p50 {np.percentile(fill[marked], 50):.3f}")
    for name in ("fill_blank", "fill_mark", "stroke_blank", "stroke_mark", "peak_blank", "peak_mark",
                 "ink_blank", "ink_mark"):
        click.echo(f"  {name:13s} {getattr(thresholds, name)}")
    if out:
        save_thresholds(thresholds, out)
        click.echo(f"thresholds written to {out}")


# -- test material: printable cards, synthetic scans with ground truth -----------------


def _parse_codes(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str] | None:
    """``--codes``: comma-separated 9-digit code numbers with a valid Luhn check digit."""
    if value is None:
        return None
    from omr.decode import is_valid_code, luhn_check_digit

    codes = [c.strip() for c in value.split(",") if c.strip()]
    if not codes:
        raise click.BadParameter("no code number given", ctx=ctx, param=param)
    for code in codes:
        if not (len(code) == 9 and code.isdigit()):
            raise click.BadParameter(f"{code!r} is not 9 digits", ctx=ctx, param=param)
        if not is_valid_code(code):
            raise click.BadParameter(
                f"{code} fails its Luhn check digit (would end in {luhn_check_digit(code[:8])})",
                ctx=ctx, param=param,
            )
    return codes


def _parse_formats(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    """``--formats``: comma-separated subset of jpg, png, tiff, pdf."""
    known = ("jpg", "png", "tiff", "pdf")
    formats = tuple(f.strip().lower() for f in value.split(",") if f.strip())
    bad = [f for f in formats if f not in known]
    if bad or not formats:
        raise click.BadParameter(f"{', '.join(bad) or 'nothing'}: use some of {', '.join(known)}",
                                 ctx=ctx, param=param)
    return formats


@cli.command()
@click.option("--codes", callback=_parse_codes,
              help="Comma-separated code numbers (9 digits, Luhn), one card each.")
@click.option("--count", type=click.IntRange(min=1),
              help="Instead of --codes: this many random valid code numbers.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for --count.")
@click.option("--dpi", type=click.FloatRange(min=50, max=1200), default=300, show_default=True,
              help="Raster resolution.")
@click.option("--format", "fmt", type=click.Choice(["pdf", "png"]), default="pdf",
              show_default=True, help="One PDF with a page per card, or one PNG per card.")
@click.option("--out", required=True, type=click.Path(),
              help="PDF file (or a folder to put cards.pdf in); folder for PNGs.")
@_layout_option
@click.option("--part", "part", type=click.IntRange(min=1),
              help="On a layout of several parts (cem-100): only this part.  [default: every part, "
                   "one card each per code number]")
def render(codes: list[str] | None, count: int | None, seed: int, dpi: float, fmt: str,
           out: str, layout_path: CardLayout | None, part: int | None) -> None:
    """Blank printable cards, each with its candidate's code number barcode.

    On a layout of several parts each code number gets a card per part, the part
    printed on it (a filled bubble of the part row, a line under the barcode) and
    after the code number in its barcode.
    """
    from pathlib import Path

    import numpy as np

    from omr.render import card_parts, render_blank, render_card, render_pdf, write_png
    from omr.synth import random_code_number

    if (codes is None) == (count is None):
        raise click.UsageError("give either --codes or --count")
    layout = _layout(layout_path)
    try:
        parts = card_parts(layout, [part] if part else None)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--part") from err
    if codes is None:
        rng = np.random.default_rng(seed)
        codes = [random_code_number(rng, layout.code_grid.digits) for _ in range(count or 0)]
    target = Path(out)
    if fmt == "pdf":
        if target.is_dir() or target.suffix.lower() != ".pdf":
            target.mkdir(parents=True, exist_ok=True)
            target = target / "cards.pdf"
        render_pdf(layout, codes, target, dpi=dpi, parts=[p for p in parts if p])
        click.echo(f"{len(codes) * len(parts)} cards at {dpi:g} DPI written to {target}")
        return
    target.mkdir(parents=True, exist_ok=True)
    for p in parts:
        blank = render_blank(layout, dpi=dpi, part=p)
        for code in codes:
            name = f"card-{code}.png" if p is None else f"card-{code}-part{p}.png"
            path = write_png(target / name, render_card(layout, code, dpi=dpi, blank=blank, part=p), dpi=dpi)
            click.echo(str(path))
    click.echo(f"{len(codes) * len(parts)} cards at {dpi:g} DPI written to {target}")


@cli.command()
@click.option("--count", type=click.IntRange(min=1), required=True, help="Number of cards (pages).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Same seed, same files and truth.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder for the images and truth.json.")
@click.option("--formats", default="jpg", show_default=True, callback=_parse_formats,
              help="Comma-separated, taken in turn per file: jpg, png, tiff, pdf "
                   "(TIFF/PDF files hold several pages).")
@click.option("--damage", type=click.Choice(["none", "mild", "heavy", "all"]), default="mild",
              show_default=True, help="Scanner damage preset ('all' mixes the three).")
@click.option("--dpi", type=click.FloatRange(min=50, max=1200),
              help="Fix every card's resolution (default: the preset's choice).")
@click.option("--pages-per-file", type=click.IntRange(min=1), default=3, show_default=True,
              help="Pages in each TIFF/PDF file.")
@_layout_option
def synth(count: int, seed: int, out: str, formats: tuple[str, ...], damage: str,
          dpi: float | None, pages_per_file: int, layout_path: CardLayout | None) -> None:
    """Synthetic filled-in, scanner-damaged cards with their ground truth (truth.json).

    On a layout of several parts (cem-100) the cards are candidates' parts, shuffled,
    some candidates with a part missing, a part twice or parts of different versions;
    candidates.json holds each candidate's truth.
    """
    from pathlib import Path

    from omr.synth import write_dataset

    layout = _layout(layout_path)
    files = write_dataset(out, count, seed=seed, layout=layout, formats=formats,
                          damage=damage, dpi=dpi, pages_per_file=pages_per_file)
    for path in files:
        click.echo(str(path))
    click.echo(f"{count} cards in {len(files)} files; truth in {Path(out) / 'truth.json'}"
               + (f", candidates in {Path(out) / 'candidates.json'}" if layout.parts is not None else ""))


# -- batches: scan into the results store, export it ------------------------------------


def _check_inputs(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    """INPUT: each must exist or be a glob pattern matching something."""
    import glob
    import os

    def problem(item: str) -> str:
        try:
            os.stat(item)
            return ""
        except FileNotFoundError:
            pass
        except OSError as err:  # a name too long, a loop of links, a folder that cannot be entered
            return f"{item}: {err.strerror or err}"
        if os.path.lexists(item):
            return f"{item}: a link to nothing"
        if any(c in item for c in "*?[") and next(glob.iglob(item), None) is not None:
            return ""
        if "**" in item and next(iter_sources([item]), item) != item:
            return ""
        return f"{item}: no such file or folder, and no file matches; check the path"

    from omr.pages import iter_sources

    problems = [text for text in map(problem, value) if text]
    if problems:
        raise click.BadParameter("; ".join(problems), ctx=ctx, param=param)
    return value


def _default_workers() -> int:
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _write_results(rows_of: object, out: str | None, jsonl_path: str | None) -> None:
    """Write the stored rows as the spec §6 CSV and/or JSON Lines (streamed from the store)."""
    from scoring.export import write_csv, write_jsonl

    assert callable(rows_of)
    if out:
        write_csv(rows_of(), out)
    if jsonl_path:
        write_jsonl(rows_of(), jsonl_path)


def _reviewed_rows(store: Any, run_id: int | None = None) -> object:
    """The store's rows with the examiners' decisions applied (`omr.review.results`), then
    the per-field columns of its key (`scoring.rows.with_details`)."""
    from omr.review.results import resolved_rows
    from scoring.rows import with_details

    def rows() -> object:
        key = store.one_key()  # refuses a store whose pages carry different key revisions
        resolved = resolved_rows(store, key=key, run_id=run_id)
        return resolved if key is None else with_details(resolved, key)

    return rows


def _interrupted_scan(store: Any, db_path: str | None, handled: int) -> str:
    """What an interrupted scan says: how many pages are kept, and how to go on."""
    if not db_path:
        return (f"scan stopped after {handled} pages; without --db nothing is kept and no results were "
                "written: give --db FILE to make a batch resumable, and run it again")
    try:
        total = f" ({store.counts().pages} in the store)"
    except OmrError:
        total = ""
    return (f"scan stopped: {handled} pages of this run are stored in {db_path}{total}; no results file "
            "was written. Run the same command again to resume: stored pages are not read again")


@cli.command()
@click.argument("inputs", metavar="INPUT...", nargs=-1, required=True, callback=_check_inputs)
@click.option("--key", "key_path", type=click.Path(exists=True, dir_okay=False), required=True,
              help="Answer key JSON (spec §4).")
@click.option("--out", type=click.Path(dir_okay=False),
              help="Results CSV (spec §6), one row per input page.")
@click.option("--jsonl", "jsonl_path", type=click.Path(dir_okay=False),
              help="Also write the rows as JSON Lines.")
@click.option("--db", "db_path", type=click.Path(dir_okay=False),
              help="SQLite results store (created if missing). Running a batch again skips the pages "
                   "already stored, so a killed batch resumes where it stopped.")
@click.option("--workers", type=click.IntRange(min=1),
              help="Worker processes on this machine; 1 reads in-process.  [default: all cores]")
@click.option("--scheduler", metavar="tcp://HOST:PORT",
              help="Run the pages on this Dask scheduler's workers instead of local processes.")
@_layout_option
@click.option("--thresholds", "thresholds_path", type=click.Path(exists=True, dir_okay=False),
              help="Thresholds from 'omr calibrate' (default: learned from each card).")
@click.option("--progress/--no-progress", default=None,
              help="Show a progress bar.  [default: when stderr is a terminal]")
@click.option("--candidates", "candidates_path", type=click.Path(dir_okay=False),
              help="Also write one row per candidate (code number): the cards of several parts joined "
                   "and scored as one test; every candidate with a card in this run.")
@click.option("--by", default="scan", show_default=True,
              help="Recorded as who added the key revision, when --key differs from the store's key.")
@click.option("--reason",
              help="Recorded as why, when --key differs from the store's key.  [default: 'omr scan "
                   "--key KEY']")
@click.pass_context
def scan(ctx: click.Context, inputs: tuple[str, ...], key_path: str, out: str | None,
         jsonl_path: str | None, db_path: str | None, workers: int | None, scheduler: str | None,
         layout_path: CardLayout | None, thresholds_path: str | None, progress: bool | None,
         candidates_path: str | None, by: str, reason: str | None) -> None:
    """Read and score every page of INPUT... (files, folders, globs): one row per page.

    JPEG, PNG, TIFF (multi-page) and PDF (multi-page); one page is one card.  A page
    that cannot be read is an 'error' row saying why; the batch goes on.  Exit code 1
    when any page is an error.

    A store holds one key: when --key differs from the key the store's pages were
    scored with, it becomes the store's next key revision (--by/--reason recorded) and
    every stored page is re-scored with it before the scan goes on; this is printed.
    """
    import functools
    import json
    import tempfile

    from tqdm import tqdm

    from calibration import load_thresholds
    from omr.batch import PageEvent, run_batch
    from omr.pages import LastFile, Skipped, count_sources, iter_pages
    from omr.processes import SCRATCH_PREFIX, signals_interrupt, sweep_stale_scratch
    from omr.store import open_store
    from scoring import load_key, score_rows
    from scoring.candidates import score_part_pages

    if not (out or jsonl_path or db_path or candidates_path):
        raise click.UsageError("nothing to write: give --out, --jsonl or --db (or --candidates)")
    layout = layout_path if layout_path is not None else _store_layout(db_path)
    key = load_key(key_path, version_labels=layout.version.labels)
    thresholds = load_thresholds(thresholds_path) if thresholds_path else None
    show = sys.stderr.isatty() if progress is None else progress
    skipped: list[Skipped] = []
    sweep_stale_scratch()  # what runs killed with SIGKILL left
    # SIGTERM / SIGHUP end the run as Ctrl-C: the pool shut down, the scratch folder and a
    # half-written output removed, the committed pages kept (re-running resumes)
    with signals_interrupt(), tempfile.TemporaryDirectory(prefix=SCRATCH_PREFIX) as tmp, \
            open_store(db_path or f"{tmp}/results.sqlite", layout_name=layout.name,
                       layout_parts=layout.part_count, writer=True) as store:
        applied = store.apply_key(key, by=by, reason=reason or f"omr scan --key {key_path}", source=key_path)
        from omr.cli_keys import applied_lines

        for line in applied_lines(applied, quiet_when_new=True):
            click.echo(line)
        # the bar counts files, each done when its last page is: a multi-page file met
        # later cannot make the percentage go backwards (it did, counted in pages)
        bar = tqdm(total=count_sources(inputs) if show else None, unit="file", disable=not show,
                   file=sys.stderr, dynamic_ncols=True, smoothing=0.05)
        counts = {"ok": 0, "review": 0, "error": 0, "skipped": 0}
        pages_done: dict[str, int] = {}  # pages handled of the files not finished yet
        workers = workers or _default_workers()
        # read in this process: each file is decoded from the bytes it was hashed from
        kept = LastFile() if workers == 1 and not scheduler else None

        def on_page(event: PageEvent) -> None:
            counts[event.status if event.action != "skip" else "skipped"] += 1
            bar.set_postfix(counts, refresh=False)
            ref = event.ref
            done = pages_done.pop(ref.source, 0) + 1
            if done < ref.pages:
                pages_done[ref.source] = done
            else:
                bar.update()

        try:
            summary = run_batch(
                iter_pages(inputs, keep=kept, on_skip=skipped.append), store, layout,
                score=functools.partial(score_part_pages if layout.parts is not None else score_rows, key=key),
                thresholds=thresholds, workers=workers, scheduler=scheduler, on_page=on_page,
                command="scan " + json.dumps(ctx.params, default=str), kept=kept,
                key_revision=applied.revision.number,
            )
        except KeyboardInterrupt:
            raise Interrupted(_interrupted_scan(store, db_path, sum(counts.values()))) from None
        finally:
            bar.close()
        if store.late_revision is not None:
            late = store.key_revision(store.late_revision)
            assert late is not None
            click.echo(f"key revision {late.number} was added while this scan ran (by {late.created_by}: "
                       f"{late.reason or 'no reason given'}); every page, this scan's too, is scored with it")
        _write_results(_reviewed_rows(store, summary.run_id), out, jsonl_path)
        if candidates_path:
            _write_candidates(store, key, candidates_path, run_id=summary.run_id)
    rate = summary.pages / summary.elapsed_s if summary.elapsed_s > 0 else 0.0
    for item in skipped:  # on stderr: a name need not be printable in the terminal's encoding
        click.echo(f"not read: {item.path}: {item.reason}", err=True)
    click.echo(
        f"scanned {summary.pages} pages in {summary.elapsed_s:.1f} s ({rate:.1f} pages/s): "
        f"ok {summary.ok}, review {summary.review}, error {summary.error} "
        f"(read {summary.read}, copies {summary.aliased}, already stored {summary.skipped})"
        + (f"; {len(skipped)} names in the folders not read (listed above)" if skipped else "")
    )
    if summary.error:
        ctx.exit(1)


@cli.command()
@click.option("--db", "db_path", type=click.Path(exists=True, dir_okay=False), required=True,
              help="Results store written by 'omr scan --db'.")
@click.option("--out", type=click.Path(dir_okay=False), help="Results CSV (spec §6).")
@click.option("--jsonl", "jsonl_path", type=click.Path(dir_okay=False), help="Results as JSON Lines.")
@click.option("--run", "run_id", type=click.IntRange(min=1),
              help="Only the pages of this scan run (the store's runs table).  [default: every page]")
@click.option("--candidates", "candidates_path", type=click.Path(dir_okay=False),
              help="Write one row per candidate (code number): cards of several parts joined and "
                   "scored with --key (from the stored responses, never the images).")
@click.option("--key", "key_path", type=click.Path(exists=True, dir_okay=False),
              help="Answer key JSON (spec §4) to score the candidates with (needed by --candidates).")
def export(db_path: str, out: str | None, jsonl_path: str | None, run_id: int | None,
           candidates_path: str | None, key_path: str | None) -> None:
    """Write the spec §6 results of every page in a results store (and its candidates)."""
    from omr.store import open_store

    if not (out or jsonl_path or candidates_path):
        raise click.UsageError("nothing to write: give --out and/or --jsonl (or --candidates)")
    if candidates_path and not key_path:
        raise click.UsageError("--candidates scores the joined cards: give --key KEY.json")
    from collections import Counter

    key = store_key(key_path, db_path) if key_path else None
    counts: Counter[str] = Counter()
    with open_store(db_path) as store:
        if run_id is not None and not store.has_run(run_id):
            runs = store.run_ids()
            held = f"runs {runs[0]} to {runs[-1]}" if runs else "no runs"
            raise click.BadParameter(f"{db_path} has no run {run_id} ({held})", param_hint="--run")
        rows_of = _reviewed_rows(store, run_id)
        assert callable(rows_of)

        def counted() -> object:  # the first file written counts the statuses
            for row in rows_of():
                if not counts["_done"]:
                    counts[row.status] += 1
                yield row
            counts["_done"] = 1

        _write_results(counted, out, jsonl_path)
        if candidates_path and key is not None:
            _write_candidates(store, key, candidates_path, run_id=run_id)
    pages = sum(n for status, n in counts.items() if status != "_done")
    verified = f", verified {counts['verified']}" if counts["verified"] else ""
    if out or jsonl_path:
        click.echo(f"exported {pages} pages (ok {counts['ok']}, review {counts['review']}, "
                   f"error {counts['error']}{verified}) to {', '.join(p for p in (out, jsonl_path) if p)}")


def _store_layout(db_path: str | None) -> CardLayout:
    """The layout a results store was made for (by its recorded name), else the default."""
    import os

    from omr.errors import LayoutError
    from omr.layout import load_layout, shipped_layouts
    from omr.store import open_store

    if not db_path or not os.path.exists(db_path):
        return load_layout()
    with open_store(db_path) as store:
        name = store.layout_name
    if name and name not in shipped_layouts():
        raise click.UsageError(f"{db_path} was made for layout {name!r}, which is not shipped: give it "
                               "with --layout PATH")
    try:
        return load_layout(name or None)
    except LayoutError as err:
        raise click.UsageError(str(err)) from err


def _write_candidates(store: ResultStore, key: AnswerKey, path: str, run_id: int | None = None) -> None:
    """The candidate-level CSV: every candidate with a page in ``run_id`` (all when None), joined
    over every page of the store (its other part may have come in another run), as reviewed."""
    from omr.review.results import resolved_rows
    from scoring.candidates import join_candidates, page_record, write_candidates_csv

    parts = store.layout_parts
    if key.questions % parts:
        raise click.UsageError(f"the key has {key.questions} questions, which {parts} cards cannot share; "
                               "give the key of the whole test")
    wanted = None if run_id is None else {r.code_number for r in resolved_rows(store, run_id=run_id)}
    records = [page_record(r) for r in resolved_rows(store) if wanted is None or r.code_number in wanted]
    rows = join_candidates(records, key, parts=parts, questions=key.questions // parts)
    write_candidates_csv(rows, path)
    review = sum(r.status == "review" for r in rows)
    click.echo(f"{len(rows)} candidates (ok {len(rows) - review}, review {review}) written to {path}")


def store_key(key_path: str, db_path: str) -> AnswerKey:
    """An answer key for the pages of a store: its versions checked against the labels of
    the store's layout (the shipped default when the store names none)."""
    return _rescore_key(key_path, _store_layout(db_path))


def _rescore_key(key_path: str, layout: CardLayout) -> AnswerKey:
    """The new key of ``omr rescore``, its versions checked against the card's labels."""
    from scoring import load_key

    return load_key(key_path, version_labels=layout.version.labels)


def _rescore_store(results: str | None, db_path: str | None, key_path: str, out: str | None,
                   jsonl_path: str | None, details: bool | None, by: str | None, reason: str | None,
                   layout: CardLayout | None) -> None:
    """``omr rescore --db``: re-score a results store in place, optionally export it."""
    from omr.store import open_store

    if results is None and db_path is None:
        raise click.UsageError("give RESULTS (a results CSV or JSON Lines file) or --db STORE")
    if results is not None:
        raise click.UsageError("give RESULTS or --db, not both")
    if details:
        raise click.UsageError("--details is for RESULTS files; export the store, then rescore the CSV")
    from omr.cli_keys import _default_by, applied_lines

    key = _rescore_key(key_path, layout if layout is not None else _store_layout(db_path))
    with open_store(db_path) as store:
        applied = store.apply_key(key, by=by or _default_by(), reason=reason or f"omr rescore --key {key_path}",
                                  source=key_path, rescore_all=True)
        if out or jsonl_path:
            _write_results(_reviewed_rows(store), out, jsonl_path)
        counts = store.counts()
    assert applied.report is not None
    for line in applied_lines(applied)[:-1]:  # the revision line; the report's own summary follows
        click.echo(line)
    click.echo(applied.report.summary())
    written = ", ".join(p for p in (out, jsonl_path) if p)
    click.echo(f"store {db_path} re-scored: ok {counts.ok}, review {counts.review}, error {counts.error}"
               + (f"; written to {written}" if written else ""))


# -- re-scoring: a corrected key over stored results, never the images -------------------


@cli.command()
@click.argument("results", metavar="[RESULTS]", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--db", "db_path", type=click.Path(exists=True, dir_okay=False),
              help="Instead of RESULTS: re-score a results store ('omr scan --db') in place.")
@click.option("--key", "key_path", type=click.Path(exists=True, dir_okay=False), required=True,
              help="The new answer key JSON (spec §4): annulments, accepted answers, corrections.")
@click.option("--out", type=click.Path(dir_okay=False), help="Re-scored results CSV (spec §6).")
@click.option("--jsonl", "jsonl_path", type=click.Path(dir_okay=False),
              help="Re-scored results as JSON Lines.")
@click.option("--details/--no-details", default=None,
              help="Add the certificate line and the points, maximum and percentage per field of "
                   "medicine as extra columns.  [default: when RESULTS has them]")
@click.option("--by", help="With --db: who decided the key (recorded with its revision).  [default: your "
                           "user name]")
@click.option("--reason", help="With --db: why (recorded with the revision).  [default: 'omr rescore "
                               "--key KEY']")
@_layout_option
def rescore(results: str | None, db_path: str | None, key_path: str, out: str | None,
            jsonl_path: str | None, details: bool | None, by: str | None, reason: str | None,
            layout_path: CardLayout | None) -> None:
    """Score RESULTS (a spec §6 CSV, or .jsonl) again with a new key.

    Every row is re-scored from its stored responses and version; error rows stay
    unscored.  Nothing in the file is trusted that its content contradicts: the flags
    describing it (ambiguous:, check_digit, code_unreadable) and scoring's own flags are
    derived again, and the status follows (an 'ok' row holding a '?' goes to review).
    Prints how many candidates changed score and pass/fail.  RESULTS may also be the
    --out file: it is read whole before anything is written.  With --db the store is
    re-scored in place, in one transaction, and the key becomes its next key revision
    ('omr key add' does the same; --out/--jsonl then export it).
    """
    if db_path or results is None:
        _rescore_store(results, db_path, key_path, out, jsonl_path, details, by, reason, layout_path)
        return
    import time

    from scoring import read_results, rescore_rows
    from scoring.export import write_csv, write_jsonl
    from scoring.rows import CERTIFICATE_COLUMN

    if not (out or jsonl_path):
        raise click.UsageError("nothing to write: give --out and/or --jsonl")
    t0 = time.perf_counter()
    key = _rescore_key(key_path, _layout(layout_path))
    old = read_results(results)
    if details is None:
        details = any(name == CERTIFICATE_COLUMN for row in old[:1] for name, _ in row.extra)
    from omr.store import PART_COLUMN
    from scoring.candidates import score_part_pages

    # page rows of cards of several parts (a 'part' column) have no score of their own
    parts = any(name == PART_COLUMN for row in old[:1] for name, _ in row.extra)
    report = rescore_rows(old, key, details=details, score=score_part_pages if parts else None)
    columns = list(dict.fromkeys(name for row in report.rows for name, _ in row.extra))
    if out:
        write_csv(report.rows, out, extra_columns=columns)
    if jsonl_path:
        write_jsonl(report.rows, jsonl_path)
    click.echo(report.summary())
    written = ", ".join(p for p in (out, jsonl_path) if p)
    click.echo(f"written to {written} in {time.perf_counter() - t0:.1f} s")


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM ends a command like Ctrl-C: cleanly, saying what is kept


from omr.cli_layouts import layouts  # noqa: E402  (the commands of their own modules)

cli.add_command(layouts)


def _register() -> None:
    from omr.cli_keys import key
    from omr.cli_report import report

    cli.add_command(key)
    cli.add_command(report)


_register()

from omr.cli_review import review  # noqa: E402  (its heavy imports are inside the command)

cli.add_command(review)


def main() -> None:
    """Console-script entry point: one message per failure on stderr, the exit codes above.

    ``OmrError`` prints as ``error: Kind: message`` and exits with the class's
    ``exit_code``; an SQLite or OS failure that escaped the store's and writers'
    messages still exits 3 with one line naming the file.
    """
    import signal
    import sqlite3

    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        code = cli.main(standalone_mode=False)
        if isinstance(code, int) and code:  # without standalone mode click returns ctx.exit(n)'s n
            sys.exit(code)
    except (click.exceptions.Abort, KeyboardInterrupt):  # click turns Ctrl-C into Abort
        click.echo("interrupted: stopped before the end; no output file was replaced (each is written "
                   "whole or not at all); run the command again", err=True)
        sys.exit(Interrupted.exit_code)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except Interrupted as err:
        click.echo(f"interrupted: {err}", err=True)
        sys.exit(err.exit_code)
    except OmrError as err:
        click.echo(f"error: {type(err).__name__}: {err}", err=True)
        sys.exit(err.exit_code)
    except sqlite3.Error as err:
        click.echo(f"error: StoreError: the results store failed: {err}; check the disk and the --db file",
                   err=True)
        sys.exit(3)
    except OSError as err:
        where = f" {err.filename}" if err.filename else ""
        click.echo(f"error: {type(err).__name__}: cannot use{where}: {err.strerror or err}; check the path "
                   "and the disk", err=True)
        sys.exit(3)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
    finally:
        signal.signal(signal.SIGTERM, previous)
