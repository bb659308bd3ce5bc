"""The `omr` command line: a thin click layer over the pipeline, scoring and store.

Exit codes: 0 success, 1 when any page ended as ``error``, 2 usage errors.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from omr.errors import OmrError

if TYPE_CHECKING:  # the CLI imports its heavy modules inside the commands
    from omr.pages import PageRef


@click.group()
@click.version_option(package_name="omr-karta")
def cli() -> None:
    """Read and score LEK/LDEK answer cards (karta testowa)."""


# -- reader: inspect a page, calibrate a batch -----------------------------------------


def _pick_page(path: str, page: int) -> PageRef:
    from omr.pages import iter_pages

    for ref in iter_pages([path]):
        if ref.page == page:
            return ref
    raise click.BadParameter(f"{path} has no page {page}", param_hint="--page")


@cli.command()
@click.argument("page_file", metavar="PAGE", type=click.Path(exists=True, dir_okay=False))
@click.option("--page", "page_number", type=click.IntRange(min=1), default=1, show_default=True,
              help="Page of a multi-page TIFF/PDF.")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="Overlay PNG to write.")
@click.option("--fills", "fills_path", type=click.Path(dir_okay=False),
              help="Also write every box's features and state as CSV.")
@click.option("--layout", "layout_path", type=click.Path(exists=True, dir_okay=False),
              help="Card layout JSON (default: the shipped lek-ldek-v1).")
@click.option("--thresholds", "thresholds_path", type=click.Path(exists=True, dir_okay=False),
              help="Thresholds from 'omr calibrate' (default: learned from this card).")
def inspect(page_file: str, page_number: int, out: str, fills_path: str | None,
            layout_path: str | None, thresholds_path: str | None) -> None:
    """What the machine saw on one PAGE: overlay picture, fills, reads and flags."""
    import cv2

    from calibration import load_thresholds
    from omr.grid import FEATURE_NAMES
    from omr.layout import load_layout
    from omr.overlay import draw_overlay
    from omr.pages import load_page
    from omr.reader import read_card

    layout = load_layout(layout_path)
    ref = _pick_page(page_file, page_number)
    gray = load_page(ref)
    thresholds = load_thresholds(thresholds_path) if thresholds_path else None
    reading = read_card(gray, layout, thresholds=thresholds)
    if not cv2.imwrite(out, draw_overlay(gray, reading, layout)):
        raise click.ClickException(f"cannot write {out}")
    click.echo(f"{page_file} page {page_number}: {'review' if reading.needs_review else 'ok'}")
    click.echo(f"  code number {reading.code_number or '-'} (barcode {reading.barcode or '-'}, "
               f"grid {reading.grid}), version {reading.version or '-'}, turned {reading.rotation_deg}")
    click.echo(f"  flags: {';'.join(reading.flags) or 'none'}")
    click.echo(f"  thresholds ({reading.thresholds.source}): fill {reading.thresholds.fill_blank}"
               f"..{reading.thresholds.fill_mark}, stroke {reading.thresholds.stroke_mark}")
    width = len(layout.options)
    for start in range(0, layout.questions, 50):
        click.echo(f"  {start + 1:3d}-{min(start + 50, layout.questions):3d} "
                   f"{reading.responses[start:start + 50]}")
    doubtful = [q for q, ch in enumerate(reading.responses) if ch in "?*"]
    for q in doubtful:
        fills = reading.box_features[q * width:(q + 1) * width, 0]
        shown = " ".join(f"{opt}={100 * f:.0f}%" for opt, f in zip(layout.options, fills, strict=True))
        click.echo(f"  question {q + 1}: read {reading.responses[q]!r}, fill {shown}")
    click.echo(f"  overlay written to {out}")
    if fills_path:
        import csv

        slices = layout.box_slices()
        with open(fills_path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["part", "index", "option", *FEATURE_NAMES, "state"])
            for k in range(reading.box_features.shape[0]):
                if k < slices["answers"].stop:
                    part, index, option = "answer", k // width + 1, layout.options[k % width]
                elif k < slices["code"].stop:
                    j, d = divmod(k - slices["code"].start, layout.code_grid.rows)
                    part, index, option = "code", j + 1, layout.code_grid.row_labels[d]
                else:
                    part, index, option = "version", 1, layout.version.labels[k - slices["version"].start]
                writer.writerow([part, index, option, *(f"{v:.4f}" for v in reading.box_features[k]),
                                 "blank marked ambiguous".split()[reading.box_states[k]]])
        click.echo(f"  box features written to {fills_path}")


@cli.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--out", type=click.Path(dir_okay=False), help="Write the thresholds JSON here.")
@click.option("--layout", "layout_path", type=click.Path(exists=True, dir_okay=False),
              help="Card layout JSON (default: the shipped lek-ldek-v1).")
@click.option("--max-pages", type=click.IntRange(min=1), default=500, show_default=True,
              help="Learn from at most this many pages (evenly spread).")
def calibrate(inputs: tuple[str, ...], out: str | None, layout_path: str | None, max_pages: int) -> None:
    """Learn mark thresholds from a batch (INPUT: files, folders, globs) and print them.

    Use the result with 'omr scan --thresholds FILE' so every card of the batch is
    judged by the same levels.
    """
    import numpy as np

    from calibration import save_thresholds
    from calibration.learn import calibrate as learn
    from omr.errors import OmrError
    from omr.grid import build_sampling_grid
    from omr.layout import load_layout
    from omr.pages import iter_pages, load_page
    from omr.reader import measure_card

    layout = load_layout(layout_path)
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
    fill = features[:, 0]
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


def main() -> None:
    """Console-script entry point: prints `OmrError`s once, as ``error: Kind: message``."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except OmrError as err:
        click.echo(f"error: {type(err).__name__}: {err}", err=True)
        sys.exit(1)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
