"""``omr report changes|items|summary|html|slips``: reports of a results store (`omr.report`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from omr.cli_keys import DB_OPTION

if TYPE_CHECKING:
    from omr.store import ResultStore
    from scoring import AnswerKey

__all__ = ["report"]



def _current_key(store: ResultStore) -> AnswerKey:
    key = store.one_key()
    if key is None:
        raise click.UsageError(
            f"{store.path} has no key revision yet: add one with 'omr key add --db "
            f"{store.path} KEY.json --by NAME --reason TEXT'"
        )
    return key


def _left_out_lines(left_out: dict[str, int]) -> list[str]:
    return [f"  not counted: {n} {reason}" for reason, n in sorted(left_out.items())]


@click.group()
def report() -> None:
    """Reports after the objections committee: changes, items, summary, HTML, slips."""


@report.command("changes")
@DB_OPTION
@click.option(
    "--to",
    "to",
    required=True,
    metavar="R2|KEY.json",
    help="The new key: a revision number of the store, or a key file (a dry run before 'omr key add').",
)
@click.option(
    "--from",
    "from_",
    type=click.IntRange(min=1),
    metavar="R1",
    help="The old key's revision.  [default: the current one]",
)
@click.option("--out", type=click.Path(dir_okay=False), help="CSV of every card whose result moved.")
def changes(db_path: str, to: str, from_: int | None, out: str | None) -> None:
    """Every candidate whose points, percent or pass/fail move from R1's key to R2's.

    Nothing in the store changes: both keys score the stored responses in memory.
    """
    from omr.cli_keys import revision_arg
    from omr.report import load_cohort, write_changes_csv
    from omr.store import open_store
    from omr.cli import store_key
    from scoring.changes import compare_keys

    with open_store(db_path) as store:
        current = _current_key(store)
        old = current if from_ is None else revision_arg(store, from_, "--from").key
        if to.isdigit():
            new = revision_arg(store, int(to), "--to").key
        elif Path(to).is_file():
            new = store_key(to, db_path)
        else:
            raise click.BadParameter(f"{to!r} is neither a revision number nor a key file", param_hint="--to")
        cohort = load_cohort(store, current)
    moved = compare_keys(cohort.codes, cohort.version_index, old, new)
    if out:
        write_changes_csv(cohort, moved, Path(out))
    click.echo(
        f"{moved.candidates} scored cards compared: {moved.changed.size} moved "
        f"({moved.changed_points} changed points, {moved.passed_to_failed} pass→fail, "
        f"{moved.failed_to_passed} fail→pass); max points {old.max_points} → {new.max_points}"
        + (f"; written to {out}" if out else "")
    )
    for line in _left_out_lines(cohort.left_out):
        click.echo(line)
    if not out:
        from scoring import format_percent

        o, n = moved.old, moved.new
        for i in moved.changed.tolist()[:50]:
            r = cohort.rows[i]
            click.echo(
                f"  {r.code_number or '-'} ({r.source} p{r.page}): {o.correct[i]} → {n.correct[i]} "
                f"points, {format_percent(int(o.percent_hundredths[i]))} → "
                f"{format_percent(int(n.percent_hundredths[i]))}%, "
                f"{'pass' if o.passed[i] else 'fail'} → {'pass' if n.passed[i] else 'fail'}"
            )
        if moved.changed.size > 50:
            click.echo(f"  … {moved.changed.size - 50} more: give --out FILE for all")


@report.command("items")
@DB_OPTION
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    required=True,
    help="Folder for items.csv (one row per master question).",
)
def items(db_path: str, out: str) -> None:
    """Item analysis per master question: difficulty, discrimination, point-biserial,
    answer shares A–E, omits, multiple marks; KR-20; flags for likely key errors."""
    from omr.report import load_cohort, write_items_csv
    from omr.store import open_store
    from scoring.items import analyse_items

    with open_store(db_path) as store:
        key = _current_key(store)
        cohort = load_cohort(store, key)
    stats = analyse_items(cohort.codes, cohort.version_index, key)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    write_items_csv(stats, folder / "items.csv")
    click.echo(
        f"{stats.candidates} scored cards, {key.questions} questions ({stats.scored_questions} not "
        f"annulled): KR-20 {stats.kr20:.3f}, mean {stats.mean_total:.2f}; written to {folder / 'items.csv'}"
    )
    for m, f in zip(stats.questions.tolist(), stats.flags, strict=True):
        if f:
            i = m - 1
            click.echo(
                f"  question {m} (key {stats.key_letters[i]}): {' '.join(f)}; p {stats.p[i]:.2f}, "
                f"D {stats.discrimination[i]:.2f}"
            )
    for line in _left_out_lines(cohort.left_out):
        click.echo(line)


def _finalised_scores(db_path: str):
    """(key, cohort, scores of the finalised cards, their rows, the rows not final)."""
    from omr.report import load_cohort
    from omr.store import open_store
    from scoring import score_codes

    with open_store(db_path) as store:
        key = _current_key(store)
        cohort = load_cohort(store, key)
    final = cohort.finalised()
    scores = score_codes(cohort.codes[final], cohort.version_index[final], key)
    rows = [r for r, f in zip(cohort.rows, final.tolist(), strict=True) if f]
    pending = [r for r, f in zip(cohort.rows, final.tolist(), strict=True) if not f]
    return key, cohort, scores, rows, pending


@report.command("summary")
@DB_OPTION
@click.option("--out", type=click.Path(dir_okay=False), help="Also write the figures as JSON.")
def summary(db_path: str, out: str | None) -> None:
    """The session's figures as CEM's notices give them (finalised cards): candidates,
    mean, median, highest, lowest, below the pass mark, maximum, annulled; per field."""
    import json
    from dataclasses import asdict

    from scoring.summary import summarise_session

    key, cohort, scores, _, pending = _finalised_scores(db_path)
    notice = summarise_session(scores, key)
    for line in notice.lines():
        click.echo(line)
    click.echo(f"not counted: {len(pending)} cards still in review")
    for line in _left_out_lines(cohort.left_out):
        click.echo(line)
    if out:
        Path(out).write_text(
            json.dumps(
                {**asdict(notice), "not_final": len(pending), "left_out": cohort.left_out},
                ensure_ascii=False,
                indent=1,
            ),
            encoding="utf-8",
        )


@report.command("html")
@DB_OPTION
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    required=True,
    help="Folder for report.html (self-contained) and the plots as PNG and SVG.",
)
def html_report(db_path: str, out: str) -> None:
    """One self-contained HTML report: summary, score histogram with the pass line,
    difficulty against discrimination, per-field box plots, the questions table."""
    from omr.report import write_html_report
    from scoring.items import analyse_items
    from scoring.summary import summarise_session

    key, cohort, scores, _, pending = _finalised_scores(db_path)
    stats = analyse_items(cohort.codes, cohort.version_index, key)
    path = write_html_report(
        Path(out),
        summary=summarise_session(scores, key),
        scores=scores,
        key=key,
        items=stats,
        left_out=cohort.left_out,
        not_final=len(pending),
    )
    click.echo(f"report written to {path} (plots beside it: histogram, items, fields .png/.svg)")


@report.command("slips")
@DB_OPTION
@click.option(
    "--out", type=click.Path(dir_okay=False), required=True, help="The PDF: one page per candidate."
)
def slips(db_path: str, out: str) -> None:
    """Result slips, one PDF page per finalised card (status ok or verified): code
    number, points, maximum, percent, pass/fail, per-field points, the certificate line.

    Cards still in review are not printed: they are listed here and in
    OUT's sibling '<name>-not-printed.csv'.
    """
    import csv

    from omr.report import write_slips

    key, cohort, _, rows, pending = _finalised_scores(db_path)
    path = Path(out)
    pages = write_slips(rows, key, path)
    listing = path.with_name(f"{path.stem}-not-printed.csv")
    with open(listing, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["source", "page", "code_number", "status", "flags"])
        for r in pending:
            w.writerow([r.source, r.page, r.code_number, r.status, ";".join(r.flags)])
    click.echo(
        f"{pages} slips written to {path}; not printed: {len(pending)} cards in review "
        f"(listed in {listing})" + "".join(f", {n} {reason}" for reason, n in sorted(cohort.left_out.items()))
    )
    for r in pending[:20]:
        click.echo(
            f"  not printed: {r.code_number or '-'} ({r.source} page {r.page}): {r.status} {';'.join(r.flags)}"
        )
