"""Reports of a results store after the objections committee (the I/O edge of `omr report`).

What is counted (every report says how many cards it left out, and why):

* **cohort** (item analysis, change report): every scored card that is a first
  reading — status ``ok``, ``review`` (``?`` counted as its own answer, never right)
  or ``verified``, with a score; ``duplicate_page`` copies and error rows are out;
* **finalised** (session summary, plots of results, slips): status ``ok``, or
  ``verified`` (confirmed at the review station with no doubt left).  Cards still in
  ``review`` are listed as not printed / not counted, never silently dropped.

The statistics are `scoring.items`, `scoring.changes` and `scoring.summary`; the plots
use matplotlib's Agg backend (the ``report`` extra), imported inside the functions.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from omr.errors import OmrError, OutputError

if TYPE_CHECKING:
    from omr.store import ResultStore
    from scoring import AnswerKey, CohortScores
    from scoring.changes import KeyChanges
    from scoring.items import ItemAnalysis
    from scoring.results import ResultRow
    from scoring.summary import SessionSummary

__all__ = [
    "FINALISED",
    "Cohort",
    "load_cohort",
    "plot_report",
    "write_changes_csv",
    "write_html_report",
    "write_items_csv",
    "write_slips",
]

#: statuses of cards whose results are final (printed on slips, counted in the notice)
FINALISED = ("ok", "verified")


@dataclass(frozen=True, slots=True)
class Cohort:
    """The store's scored first readings, with their codes for the vectorised statistics.

    rows : the export rows (after review, with the per-field columns)
    codes : (N, Q) uint8, `scoring.encode_responses` of their responses
    version_index : (N,) intp
    left_out : {reason: count} of the store's pages not in ``rows``
    """

    rows: tuple[ResultRow, ...]
    codes: NDArray[np.uint8]
    version_index: NDArray[np.intp]
    left_out: dict[str, int]

    def finalised(self) -> NDArray[np.bool_]:
        """(N,) the rows with status ok or verified."""
        return np.array([r.status in FINALISED for r in self.rows], dtype=bool)


def load_cohort(store: ResultStore, key: AnswerKey) -> Cohort:
    """Every scored first reading of ``store`` (see the module docstring), as scored now.

    Raises
    ------
    StoreError
        The store mixes key revisions (`ResultStore.one_key`).
    """
    from omr.review.results import resolved_rows
    from omr.store import DUPLICATE_PAGE
    from scoring import encode_responses, version_indices
    from scoring.rows import with_details

    rows: list[ResultRow] = []
    left_out: dict[str, int] = {}
    store.one_key()
    for row in with_details(resolved_rows(store, key=key), key):
        if row.status == "error":
            reason = "error"
        elif any(f.startswith(DUPLICATE_PAGE + ":") for f in row.flags):
            reason = "copy of another page (duplicate_page)"
        elif row.correct is None:
            reason = "not scored (" + ";".join(row.flags) + ")"
        else:
            rows.append(row)
            continue
        left_out[reason] = left_out.get(reason, 0) + 1
    codes = encode_responses([r.responses for r in rows], key.options, key.questions)
    return Cohort(
        rows=tuple(rows),
        codes=codes,
        version_index=version_indices([r.version for r in rows], key),
        left_out=left_out,
    )


def _open_out(path: Path) -> io.TextIOWrapper:
    try:
        return open(path, "w", newline="", encoding="utf-8")
    except OSError as err:
        raise OutputError(
            f"cannot write {path}: {err.strerror}; check the folder exists and is writable"
        ) from err


def write_items_csv(items: ItemAnalysis, path: Path) -> None:
    """One row per master question: key, annulled, p, D, r_pb, shares, flags."""
    with _open_out(path) as fh:
        w = csv.writer(fh, lineterminator="\n")
        names = {"-": "omit", "*": "multi", "?": "ambiguous", "!": "other"}
        share_names = [f"share_{names.get(b, b)}" for b in items.bins]
        w.writerow(
            [
                "question",
                "key",
                "annulled",
                "p",
                "p_upper",
                "p_lower",
                "discrimination",
                "point_biserial",
                *share_names,
                "flags",
            ]
        )
        for i, m in enumerate(items.questions.tolist()):
            w.writerow(
                [
                    m,
                    items.key_letters[i],
                    "true" if items.annulled[i] else "false",
                    *(
                        _num(x)
                        for x in (
                            items.p[i],
                            items.p_upper[i],
                            items.p_lower[i],
                            items.discrimination[i],
                            items.point_biserial[i],
                        )
                    ),
                    *(_num(x) for x in items.shares[i]),
                    ";".join(items.flags[i]),
                ]
            )


def _num(x: float) -> str:
    return "" if math.isnan(x) else f"{x:.4f}"


def write_changes_csv(cohort: Cohort, changes: KeyChanges, path: Path) -> None:
    """One row per card whose points, percent or pass/fail moved."""
    from scoring import format_percent

    with _open_out(path) as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(
            [
                "source",
                "page",
                "code_number",
                "status",
                "old_correct",
                "new_correct",
                "old_max_points",
                "new_max_points",
                "old_percent",
                "new_percent",
                "old_passed",
                "new_passed",
            ]
        )
        o, n = changes.old, changes.new
        for i in changes.changed.tolist():
            r = cohort.rows[i]
            w.writerow(
                [
                    r.source,
                    r.page,
                    r.code_number,
                    r.status,
                    int(o.correct[i]),
                    int(n.correct[i]),
                    o.max_points,
                    n.max_points,
                    format_percent(int(o.percent_hundredths[i])),
                    format_percent(int(n.percent_hundredths[i])),
                    str(bool(o.passed[i])).lower(),
                    str(bool(n.passed[i])).lower(),
                ]
            )


# -- plots (matplotlib, Agg) ----------------------------------------------------------------


def _pyplot():
    try:
        import matplotlib
    except ImportError as err:  # the 'report' extra
        raise OmrError("the plots need matplotlib: pip install 'omr-karta[report]'") from err
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, folder: Path, name: str) -> dict[str, bytes]:
    """Write ``name``.png and ``name``.svg; return their bytes."""
    out = {}
    for ext in ("png", "svg"):
        buf = io.BytesIO()
        fig.savefig(
            buf, format=ext, dpi=110, bbox_inches="tight", metadata={"Date": None} if ext == "svg" else None
        )
        out[ext] = buf.getvalue()
        try:
            (folder / f"{name}.{ext}").write_bytes(out[ext])
        except OSError as err:
            raise OutputError(f"cannot write {folder / f'{name}.{ext}'}: {err.strerror}") from err
    return out


def plot_report(
    folder: Path, scores: CohortScores, key: AnswerKey, items: ItemAnalysis
) -> dict[str, dict[str, bytes]]:
    """The three plots as PNG and SVG files in ``folder``: score histogram with the pass
    line, difficulty against discrimination, per-field box plots."""
    plt = _pyplot()
    figures: dict[str, dict[str, bytes]] = {}
    with plt.rc_context({"font.size": 9, "svg.hashsalt": "omr"}):
        fig, ax = plt.subplots(figsize=(7, 3.6))
        most = max(scores.max_points, 1)
        ax.hist(scores.correct, bins=np.arange(-0.5, most + 1.5, 1 if most <= 60 else 2), color="#4a7bb7")
        line = math.ceil(key.pass_percent * scores.max_points / 100)
        ax.axvline(line - 0.5, color="#c0392b", lw=2, label=f"pass mark: {line} points ({key.pass_percent}%)")
        ax.set_xlabel(f"points (of {scores.max_points})")
        ax.set_ylabel("candidates")
        ax.set_title("Scores of the finalised cards")
        ax.legend(loc="upper left")
        figures["histogram"] = _save(fig, folder, "histogram")
        plt.close(fig)

        fig, ax = plt.subplots(figsize=(7, 4.2))
        flagged = np.array([bool(f) for f in items.flags])
        keep = ~items.annulled
        for mask, colour, label in (
            (keep & ~flagged, "#4a7bb7", "question"),
            (keep & flagged, "#c0392b", "flagged (possible key error)"),
            (items.annulled, "#999999", "annulled"),
        ):
            if mask.any():
                ax.scatter(items.p[mask], items.discrimination[mask], s=14, c=colour, label=label)
        for i in np.flatnonzero(flagged | items.annulled):
            ax.annotate(
                str(items.questions[i]),
                (items.p[i], items.discrimination[i]),
                fontsize=7,
                xytext=(3, 2),
                textcoords="offset points",
            )
        ax.axhline(0, color="black", lw=0.6)
        ax.set_xlim(-0.02, 1.02)
        ax.set_xlabel("difficulty p (share right)")
        ax.set_ylabel("discrimination D (upper − lower 27 %)")
        ax.set_title("Questions: difficulty against discrimination")
        ax.legend(loc="lower center", fontsize=7)
        figures["items"] = _save(fig, folder, "items")
        plt.close(fig)

        fig, ax = plt.subplots(figsize=(7, 4.2))
        if scores.domain_names:
            share = scores.domain_correct / np.maximum(scores.domain_max, 1) * 100
            ax.boxplot([share[:, d] for d in range(share.shape[1])], orientation="horizontal")
            ax.set_yticks(
                range(1, len(scores.domain_names) + 1),
                [f"{n} ({m})" for n, m in zip(scores.domain_names, scores.domain_max.tolist(), strict=True)],
            )
            ax.invert_yaxis()
        ax.set_xlabel("percent of the field's points")
        ax.set_title("Fields of medicine (points possible in brackets)")
        figures["fields"] = _save(fig, folder, "fields")
        plt.close(fig)
    return figures


def write_html_report(
    folder: Path,
    *,
    summary: SessionSummary,
    scores: CohortScores,
    key: AnswerKey,
    items: ItemAnalysis,
    left_out: dict[str, int],
    not_final: int,
) -> Path:
    """``folder``/report.html, one self-contained file (plots embedded as PNG data URIs),
    beside the plots' PNG and SVG files."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create {folder}: {err.strerror}") from err
    figures = plot_report(folder, scores, key, items)
    e = html.escape

    def img(name: str, alt: str) -> str:
        data = base64.b64encode(figures[name]["png"]).decode("ascii")
        return (
            f'<figure><img alt="{e(alt)}" src="data:image/png;base64,{data}"><figcaption>{e(alt)} '
            f'(also <a href="{name}.svg">{name}.svg</a>)</figcaption></figure>'
        )

    rows = [
        ("candidates (finalised cards)", summary.candidates),
        ("mean points", f"{summary.mean:.2f}"),
        ("median", f"{summary.median:g}"),
        ("highest", summary.highest),
        ("lowest", summary.lowest),
        (f"below the pass mark ({summary.pass_percent}%)", summary.below_pass),
        ("maximum possible", summary.max_points),
        ("annulled questions", summary.annulled),
        ("KR-20 (reliability)", "-" if math.isnan(items.kr20) else f"{items.kr20:.3f}"),
    ]
    head = "".join(f"<tr><th>{e(str(k))}</th><td>{e(str(v))}</td></tr>" for k, v in rows)
    fields = "".join(
        f"<tr><td>{e(f.name)}</td><td>{f.max_points}</td><td>{f.mean:.2f}</td><td>{f.median:g}</td>"
        f"<td>{f.lowest}–{f.highest}</td></tr>"
        for f in summary.fields
    )
    item_rows = []
    for i, m in enumerate(items.questions.tolist()):
        cls = ' class="flag"' if items.flags[i] else ' class="annulled"' if items.annulled[i] else ""
        shares = "".join(f"<td>{100 * x:.1f}</td>" for x in items.shares[i])
        item_rows.append(
            f"<tr{cls}><td>{m}</td><td>{e(items.key_letters[i])}{' (annulled)' if items.annulled[i] else ''}</td>"
            f"<td>{_num(items.p[i])}</td><td>{_num(items.discrimination[i])}</td>"
            f"<td>{_num(items.point_biserial[i])}</td>{shares}<td>{e(' '.join(items.flags[i]))}</td></tr>"
        )
    bins = "".join(f"<th>% {e(b if b != '!' else 'other')}</th>" for b in items.bins)
    out_list = "".join(f"<li>{e(k)}: {v}</li>" for k, v in sorted(left_out.items()))
    flagged = [str(m) for m, f in zip(items.questions.tolist(), items.flags, strict=True) if f]
    page = f"""<!doctype html>
<html lang="pl"><head><meta charset="utf-8"><title>{e(summary.exam)} {e(summary.session)}: results report</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:1em auto;color:#222}}
table{{border-collapse:collapse;margin:0.5em 0}}td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}}
th{{background:#f0f0f0}}tr.flag td{{background:#fde2e0}}tr.annulled td{{color:#888}}
figure{{margin:1em 0}}img{{max-width:100%}}</style></head><body>
<h1>{e(summary.exam)} {e(summary.session)}: results after the objections committee</h1>
<p>Key: max points {key.max_points}, pass mark {key.pass_percent}%, annulled: {e(", ".join(map(str, key.annulled)) or "none")}.
Item statistics over {items.candidates} scored cards; results over {summary.candidates} finalised cards
({not_final} still in review are not counted).</p>
<h2>Session summary</h2><table>{head}</table>
<h2>Fields of medicine</h2><table><tr><th>field</th><th>max</th><th>mean</th><th>median</th><th>range</th></tr>{fields}</table>
{img("histogram", "Score histogram with the pass line")}
{img("fields", "Points per field of medicine")}
<h2>Questions</h2>
<p>Flagged (possible key errors): {e(", ".join(flagged) or "none")}.</p>
{img("items", "Difficulty against discrimination")}
<table><tr><th>q</th><th>key</th><th>p</th><th>D</th><th>r_pb</th>{bins}<th>flags</th></tr>{"".join(item_rows)}</table>
<h2>Pages not counted</h2><ul>{out_list or "<li>none</li>"}</ul>
</body></html>
"""
    path = folder / "report.html"
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as err:
        raise OutputError(f"cannot write {path}: {err.strerror}") from err
    return path


# -- result slips ----------------------------------------------------------------------------


#: WinAnsiEncoding has these; the other Polish letters get free codes through /Differences
_EXTRA_GLYPHS = {
    "ą": "aogonek",
    "ć": "cacute",
    "ę": "eogonek",
    "ł": "lslash",
    "ń": "nacute",
    "ś": "sacute",
    "ź": "zacute",
    "ż": "zdotaccent",
    "Ą": "Aogonek",
    "Ć": "Cacute",
    "Ę": "Eogonek",
    "Ł": "Lslash",
    "Ń": "Nacute",
    "Ś": "Sacute",
    "Ź": "Zacute",
    "Ż": "Zdotaccent",
}
_FIRST_EXTRA = 0xA1  # codes 0xA1.. take those glyphs
_WINANSI = {"ó": 0xF3, "Ó": 0xD3, "—": 0x97, "–": 0x96, "é": 0xE9, "ü": 0xFC, "ö": 0xF6, "ä": 0xE4}


def _pdf_text(text: str) -> bytes:
    """``text`` as a PDF string in the slips' font encoding (other characters: '?')."""
    extra = {c: _FIRST_EXTRA + i for i, c in enumerate(_EXTRA_GLYPHS)}
    out = bytearray()
    for ch in text:
        code = ord(ch) if 32 <= ord(ch) < 127 else _WINANSI.get(ch, extra.get(ch, ord("?")))
        if ch in "()\\":
            out += b"\\"
        out.append(code)
    return b"(" + bytes(out) + b")"


def _slip_pdf(pages: Sequence[Sequence[tuple[float, bool, float, str]]], title: str) -> bytes:
    """A PDF of A4 pages of text lines ``(x_mm, bold, size_pt, text)`` top to bottom.

    Written directly (Helvetica and Helvetica-Bold, the viewers' own fonts, with the
    Polish letters named in the encoding): 0.36 ms a page against ~130 ms through
    matplotlib's PdfPages, so a national session's slips take seconds, and the text is real text.
    """
    differences = " ".join(f"/{g}" for g in _EXTRA_GLYPHS.values())
    encoding = (
        f"<< /Type /Encoding /BaseEncoding /WinAnsiEncoding /Differences [{_FIRST_EXTRA} {differences}] >>"
    )
    objects: list[bytes] = [b"", b""]  # 1: catalog, 2: pages (filled in at the end)
    objects.append(encoding.encode())  # 3
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding 3 0 R >>")  # 4
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding 3 0 R >>")  # 5
    kids = []
    mm = 72 / 25.4
    for lines in pages:
        y = 842 - 20 * mm
        ops = []
        for x_mm, bold, size, text in lines:
            y -= size * 1.55
            ops.append(
                b"BT /F%d %g Tf %.2f %.2f Td %s Tj ET"
                % (2 if bold else 1, size, x_mm * mm, y, _pdf_text(text))
            )
        stream = b"\n".join(ops)
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents %d 0 R "
            b"/Resources << /Font << /F1 4 0 R /F2 5 0 R >> >> >>" % (len(objects))
        )
        kids.append(len(objects))
    objects[0] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objects[1] = b"<< /Type /Pages /Count %d /Kids [%s] >>" % (
        len(kids),
        b" ".join(b"%d 0 R" % k for k in kids),
    )
    objects.append(b"<< /Title %s /Producer (omr) >>" % _pdf_text(title))
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (n, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        len(objects),
        xref,
    )
    return bytes(out)


def write_slips(rows: Sequence[ResultRow], key: AnswerKey, path: Path) -> int:
    """One A4 PDF page per row (finalised cards): code number, points, maximum, percent,
    pass/fail, per-field points and the certificate line.  Returns pages written.

    Raises
    ------
    OutputError
        ``path`` cannot be written (it is replaced only once complete).
    """
    from scoring.rows import (
        CERTIFICATE_COLUMN,
        DOMAIN_COLUMN_PREFIX,
        DOMAIN_MAX_COLUMN_PREFIX,
        DOMAIN_PERCENT_COLUMN_PREFIX,
    )

    pages = []
    for row in rows:
        extra = dict(row.extra)
        pages.append(
            [
                (20, True, 16, f"{key.exam} {key.session}".strip() + " — wynik egzaminu"),
                (20, True, 13, f"Numer kodowy: {row.code_number}"),
                (20, False, 11, f"Punkty: {row.correct} / {row.max_points}"),
                (20, False, 11, f"Wynik procentowy: {row.percent}%"),
                (
                    20,
                    True,
                    12,
                    f"Próg zdania: {key.pass_percent}%  —  {'ZDANY' if row.passed else 'NIEZDANY'}",
                ),
                (20, True, 12, "Punkty w dziedzinach:"),
                *(
                    (
                        26,
                        False,
                        10,
                        f"{d.name}: {extra.get(DOMAIN_COLUMN_PREFIX + d.name, '')} / "
                        f"{extra.get(DOMAIN_MAX_COLUMN_PREFIX + d.name, '')} "
                        f"({extra.get(DOMAIN_PERCENT_COLUMN_PREFIX + d.name, '')}%)",
                    )
                    for d in key.domains
                ),
                (20, False, 11, ""),
                (20, False, 11, f"Egzamin złożony {extra.get(CERTIFICATE_COLUMN, '')}"),
                (20, False, 11, ""),
                (20, False, 7, f"Źródło: {row.source}, strona {row.page}; status {row.status}"),
            ]
        )
    tmp = path.with_name(f".{path.name}.partial")
    try:
        tmp.write_bytes(_slip_pdf(pages, f"{key.exam} {key.session}: result slips"))
        tmp.replace(path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise OutputError(
            f"cannot write {path}: {err.strerror}; check the folder exists and is writable"
        ) from err
    return len(rows)
