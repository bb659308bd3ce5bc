"""``omr key add|list|diff``: the answer-key revisions of a results store.

A store scores every page with one key, its current revision (the highest number).
Each revision keeps the whole key, who added it, when and why; adding one re-scores
every stored page with it in the same transaction (`omr.store.ResultStore.apply_key`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from omr.store import KeyApplied, KeyRevision, ResultStore
    from scoring import AnswerKey

__all__ = ["DB_OPTION", "applied_lines", "key", "key_diff_lines", "revision_arg"]


def applied_lines(applied: KeyApplied, *, quiet_when_new: bool = False) -> list[str]:
    """What `ResultStore.apply_key` did, for people (empty when nothing changed).

    ``quiet_when_new``: say nothing when the store had no key and no page yet (a
    fresh store taking its first key: nothing was re-scored).
    """
    rev, prev, report = applied.revision, applied.previous, applied.report
    lines = []
    if applied.added:
        if prev is None and (report is None or not report.rows) and quiet_when_new:
            return []
        what = f"key revision {rev.number} added (by {rev.created_by}: {rev.reason or 'no reason given'})"
        if applied.same_as is not None:
            what += f"; the same key as revision {applied.same_as}"
        if prev is not None:
            what += (
                f"; the store was scored with revision {prev.number} "
                f"(by {prev.created_by}, {prev.created_at}: {prev.reason or 'no reason given'})"
            )
        lines.append(what)
    if report is not None and report.rows:
        lines.append(f"re-scored every stored page with key revision {rev.number}: {report.summary()}")
    return lines


def revision_arg(store: ResultStore, value: int, param: str) -> KeyRevision:
    """Revision ``value`` of ``store``, or a usage error naming the ones it has."""
    revision = store.key_revision(value)
    if revision is None:
        have = [r.number for r in store.key_revisions()]
        raise click.BadParameter(
            f"{store.path} has no key revision {value} (it has "
            f"{', '.join(map(str, have)) if have else 'none: add one with omr key add'})",
            param_hint=param,
        )
    return revision


def key_diff_lines(old: AnswerKey, new: AnswerKey) -> list[str]:
    """What changed from ``old`` to ``new``: annulled, accepted, changed letters (master
    numbers), and every other field that differs.  Empty when they score alike."""
    from scoring import key_to_dict

    lines: list[str] = []
    gone = sorted(set(old.annulled) - set(new.annulled))
    came = sorted(set(new.annulled) - set(old.annulled))
    if came:
        lines.append(f"annulled: {', '.join(map(str, came))}")
    if gone:
        lines.append(f"no longer annulled: {', '.join(map(str, gone))}")
    a_old = {a.question: a.letters for a in old.accepted}
    a_new = {a.question: a.letters for a in new.accepted}
    for q in sorted(set(a_old) | set(a_new)):
        if a_old.get(q) != a_new.get(q):
            lines.append(f"accepted {q}: {a_old.get(q, '-')} -> {a_new.get(q, '-')}")
    for v in new.versions:
        try:
            before = old.version(v.name)
        except Exception:  # noqa: BLE001 - a version the old key lacks
            lines.append(f"version {v.name}: new")
            continue
        master_old = dict(zip(before.order, before.answers, strict=True))
        master_new = dict(zip(v.order, v.answers, strict=True))
        changed = [
            f"{m}: {master_old[m]} -> {master_new[m]}"
            for m in sorted(master_new)
            if master_old.get(m) != master_new[m]
        ]
        if changed:
            lines.append(f"version {v.name} letters (master numbers): {', '.join(changed)}")
        if before.order != v.order:
            lines.append(f"version {v.name}: order of questions changed")
    for name in sorted(set(old.version_names) - set(new.version_names)):
        lines.append(f"version {name}: removed")
    d_old, d_new = key_to_dict(old), key_to_dict(new)
    for field in ("exam", "session", "questions", "options", "annulled_policy", "pass_percent", "domains"):
        if d_old.get(field) != d_new.get(field):
            shown = "changed" if field == "domains" else f"{d_old.get(field)!r} -> {d_new.get(field)!r}"
            lines.append(f"{field}: {shown}")
    if old.max_points != new.max_points:
        lines.append(f"max points: {old.max_points} -> {new.max_points}")
    return lines


def _default_by() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in this environment
        return "unknown"


#: ``--db STORE`` of every command reading a results store
DB_OPTION = click.option(
    "--db",
    "db_path",
    type=click.Path(exists=True, dir_okay=False),
    required=True,
    help="Results store written by 'omr scan --db'.",
)


@click.group()
def key() -> None:
    """Answer-key revisions of a results store (after annulments and key corrections)."""


@key.command("add")
@DB_OPTION
@click.argument("key_path", metavar="KEY.json", type=click.Path(exists=True, dir_okay=False))
@click.option("--by", required=True, help="Who decided this key (recorded with the revision).")
@click.option("--reason", required=True, help="Why (e.g. 'objections committee 2026-10-02: 17 annulled').")
def key_add(db_path: str, key_path: str, by: str, reason: str) -> None:
    """Store KEY.json as the next key revision and re-score every stored page with it.

    One transaction: the store holds the old key on every page or the new one on every
    page.  A key equal to the current revision adds nothing (pages scored with another
    revision, if any, are re-scored).  See what would change first with
    'omr report changes --db S --to KEY.json'.
    """
    from omr.store import open_store
    from omr.cli import store_key

    new = store_key(key_path, db_path)
    with open_store(db_path) as store:
        applied = store.apply_key(new, by=by, reason=reason, source=key_path)
        counts = store.counts()
    for line in applied_lines(applied):
        click.echo(line)
    if not applied.added:
        click.echo(f"{key_path} is the current key revision {applied.revision.number} already; nothing added")
    click.echo(
        f"store {db_path}: key revision {applied.revision.number}; ok {counts.ok}, "
        f"review {counts.review}, error {counts.error}"
    )


@key.command("list")
@DB_OPTION
def key_list(db_path: str) -> None:
    """Every key revision: number, when, who, why, max points, pages scored with it."""
    from omr.store import open_store

    with open_store(db_path) as store:
        revisions = store.key_revisions()
        pages = store.pages_per_revision()
    if not revisions:
        click.echo(f"{db_path}: no key revision (scan with --key or 'omr key add' to add one)")
    for r in revisions:
        current = " (current)" if r is revisions[-1] else ""
        k = r.key
        click.echo(f"{r.number}{current}  {r.created_at}  by {r.created_by}: {r.reason or '-'}")
        click.echo(
            f"    {k.exam or '-'} {k.session or '-'}, {k.questions} questions, annulled "
            f"{len(k.annulled)} ({', '.join(map(str, k.annulled)) or 'none'}), accepted "
            f"{len(k.accepted)}, max points {k.max_points}, pass {k.pass_percent}%; from "
            f"{r.source or '-'}; {pages.get(r.number, 0)} pages scored with it"
        )
    if pages.get(None):
        click.echo(f"{pages[None]} pages carry no revision (scored by an older omr)")


@key.command("diff")
@DB_OPTION
@click.argument("r1", type=click.IntRange(min=1))
@click.argument("r2", type=click.IntRange(min=1))
def key_diff(db_path: str, r1: int, r2: int) -> None:
    """What changed from revision R1 to R2: annulled, accepted, changed letters."""
    from omr.store import open_store

    with open_store(db_path) as store:
        old, new = revision_arg(store, r1, "R1"), revision_arg(store, r2, "R2")
    lines = key_diff_lines(old.key, new.key)
    click.echo(f"revision {r1} -> {r2}: " + ("no difference" if not lines else f"{len(lines)} changes"))
    for line in lines:
        click.echo(f"  {line}")
