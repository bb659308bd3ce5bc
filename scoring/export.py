"""Results files (spec §6): the CSV and JSON Lines exports, and reading them back.

CSV: UTF-8, a header row, the required columns first in spec order, then any extra
columns (``ResultRow.extra``).  Empty score cells on rows without a score; ``percent``
with two decimals; ``passed`` as ``true``/``false``; ``flags`` joined with ``;``.
``code_number`` and ``responses`` are text, so leading zeros and a leading ``-``
survive a round trip (import the column as *text* in a spreadsheet: a spreadsheet that
guesses types turns ``012345674`` into a number).

No cell can run as a spreadsheet formula (CSV injection: a file named
``=HYPERLINK(...).jpg``, a message quoting it).  A text cell whose first character,
after any apostrophes and spaces, is one a spreadsheet starts a formula with (``=``,
``+``, ``-``, ``@``, tab, carriage return, or the full-width ``＝＋－＠``) is written
with one ``'`` before it, the spreadsheets' own "this is text" mark; `read_csv` takes
exactly that one ``'`` off again (`spreadsheet_text` / `from_spreadsheet_text`: every
value round-trips, an apostrophe of the value's own included).  The one exception is
a ``responses`` cell made only of capital letters and ``-*?`` (every row the reader
writes): spec §6 fixes it as one character per question, a program reading the file
must get those 200 characters, and such a cell holds no digit, parenthesis, ``!`` or
``|``, so it cannot reference a cell, call a function or reach another program; a
spreadsheet told to evaluate it shows ``#NAME?``, so import that column as text.
JSON Lines is not for spreadsheets: its values are written as they are.

JSON Lines: one object per row with the same keys; ``page``, ``correct`` and
``max_points`` are numbers, ``passed`` a boolean, ``percent`` a string (``"56.06"``:
exact, never a binary float), ``flags`` the same ``;``-joined text as in the CSV, and
``null`` for an empty score.

Writers take any iterable (rows are streamed) and replace the target file only once
it is complete.
"""

from __future__ import annotations

import codecs
import csv
import errno
import io
import itertools
import json
import os
import secrets
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TextIO

from omr.errors import OutputError, ScoringError
from scoring.results import RESULT_COLUMNS, STATUSES, ResultRow

__all__ = ["from_spreadsheet_text", "read_csv", "read_jsonl", "read_results", "spreadsheet_text", "write_csv",
           "write_jsonl"]

_CENT = Decimal("0.01")
#: first characters that make a spreadsheet read a cell as a formula (OWASP's list, and
#: the full-width forms some spreadsheets take for them)
FORMULA_STARTS = frozenset("=+-@\t\r\uff1d\uff0b\uff0d\uff20")
#: a responses cell made only of these is written as it is (see the module docstring)
_RESPONSE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ-*?")


def _formula_like(text: str) -> bool:
    """Whether a spreadsheet would evaluate ``text`` once its leading ``'`` are gone."""
    rest = text.lstrip("'").lstrip(" ")
    return bool(rest) and rest[0] in FORMULA_STARTS


def spreadsheet_text(text: str) -> str:
    """``text`` as a CSV cell no spreadsheet evaluates: ``'`` before a formula-like value.

    >>> spreadsheet_text("=1+1"), spreadsheet_text("a.jpg"), spreadsheet_text("'-1")
    ("'=1+1", 'a.jpg', "''-1")
    """
    return "'" + text if text and _formula_like(text) else text


def from_spreadsheet_text(cell: str) -> str:
    """The value `spreadsheet_text` wrote as ``cell`` (its one added ``'`` taken off).

    >>> from_spreadsheet_text("'=1+1"), from_spreadsheet_text("''-1"), from_spreadsheet_text("'quoted'")
    ('=1+1', "'-1", "'quoted'")
    """
    return cell[1:] if cell.startswith("'") and _formula_like(cell) else cell


class _CsvRows:
    """``csv.writer`` rows ending in ``\n`` that also quote a cell holding a bare ``\r``
    (the writer quotes only on its line terminator's characters: a file name with a
    carriage return split its row in two on reading)."""

    def __init__(self, fh: TextIO) -> None:
        self._fh = fh
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, lineterminator="\r\n")

    def writerow(self, cells: Sequence[str]) -> None:
        self._buffer.seek(0)
        self._buffer.truncate()
        self._writer.writerow(cells)
        self._fh.write(self._buffer.getvalue()[:-2] + "\n")


def _responses_text(responses: str) -> str:
    return responses if _RESPONSE_CHARS.issuperset(responses) else spreadsheet_text(responses)


def _percent_text(percent: Decimal) -> str:
    return str(percent.quantize(_CENT, rounding=ROUND_HALF_UP))


def _cells(row: ResultRow) -> list[str]:
    """The required columns of ``row`` as CSV text, in `RESULT_COLUMNS` order."""
    return [
        spreadsheet_text(row.source),
        str(row.page),
        spreadsheet_text(row.status),
        spreadsheet_text(row.code_number),
        spreadsheet_text(row.version),
        _responses_text(row.responses),
        "" if row.correct is None else str(row.correct),
        "" if row.max_points is None else str(row.max_points),
        "" if row.percent is None else _percent_text(row.percent),
        "" if row.passed is None else ("true" if row.passed else "false"),
        spreadsheet_text(";".join(row.flags)),
    ]


def _extra_cells(row: ResultRow, columns: Sequence[str], path: Path, n: int) -> list[str]:
    values = dict(row.extra)
    unknown = [name for name in values if name not in columns]
    if unknown:
        raise ScoringError(
            f"{path}: row {n} ({row.source} page {row.page}) has column {unknown[0]!r} that the header "
            f"(taken from the first row: {', '.join(columns) or 'no extra columns'}) lacks; pass "
            "extra_columns= with every column"
        )
    return [spreadsheet_text(values.get(name, "")) for name in columns]


class _Replacing:
    """Write ``path`` through a new file in its folder that replaces it on success.

    The new file is made by the system, never by name: an unnamed file
    (``O_TMPFILE``) linked under a fresh random name only once it is complete, then
    renamed over ``path``; where the file system has no unnamed files, a fresh random
    name created exclusively (``O_EXCL``).  A link planted under a predictable name
    (``.results.csv.partial``, as before) cannot redirect the write, and a run killed
    while writing (even with SIGKILL) leaves no half-written file behind.

    A target that exists and is not a regular file (``/dev/stdout``, a FIFO) is written
    directly: nothing may be renamed over a device.  Any `OSError` (a full disk, a
    read-only file system, no permission) becomes an `OutputError` naming the file;
    the temporary file is removed and an earlier ``path`` is left as it was.

    ``errors``: how text the encoding cannot hold is written (``omr-name-bytes``: a
    file name that is not valid UTF-8 shows its odd bytes as ``\\xff``).
    """

    def __init__(self, path: str | Path, errors: str = "strict") -> None:
        self.path = Path(path)
        self.errors = errors
        self.folder = self.path.parent
        self.named: Path | None = None  # the temporary name, when the file has one
        self.direct = False

    def __enter__(self) -> TextIO:
        try:
            self.direct = self.path.exists() and not self.path.is_file() and not self.path.is_dir()
            if self.direct:
                self.fh = open(self.path, "w", newline="", encoding="utf-8", errors=self.errors)
                return self.fh
            try:
                fd = os.open(self.folder, os.O_WRONLY | os.O_TMPFILE | os.O_CLOEXEC, 0o644)
            except (AttributeError, OSError) as err:
                if isinstance(err, OSError) and err.errno not in _NO_TMPFILE_ERRNOS:
                    raise
                # no unnamed files here: an exclusive fresh name
                fd, name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".partial", dir=self.folder)
                self.named = Path(name)
                os.fchmod(fd, 0o644 & ~_umask())
            self.fh = open(fd, "w", newline="", encoding="utf-8", errors=self.errors)
        except OSError as err:
            raise OutputError.writing("results", self.path, err) from err
        return self.fh

    def __exit__(self, kind: object, value: object, tb: object) -> None:
        try:
            if kind is None and not self.direct:
                self.fh.flush()  # a full disk may show only here
                if self.named is None:
                    self.named = self._link(self.fh.fileno())
            self.fh.close()
            if kind is None and not self.direct:
                assert self.named is not None
                os.replace(self.named, self.path)
                self.named = None
        except OSError as err:
            raise OutputError.writing("results", self.path, err) from err
        finally:
            if self.named is not None:
                self.named.unlink(missing_ok=True)
        if isinstance(value, OSError):
            raise OutputError.writing("results", self.path, value) from value

    def _link(self, fd: int) -> Path:
        """Give the unnamed file ``fd`` a fresh random name in the folder."""
        # linkat(AT_SYMLINK_FOLLOW) of /proc/self/fd/N: os.link calls it only given a dir_fd
        proc = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for _ in range(100):
                name = self.folder / f".{self.path.name}.{secrets.token_hex(8)}.partial"
                try:
                    os.link(str(fd), name, src_dir_fd=proc, follow_symlinks=True)
                    return name
                except FileExistsError:
                    continue
        finally:
            os.close(proc)
        raise FileExistsError(f"{self.folder}: no free temporary name for {self.path.name}")


#: errors of ``open(O_TMPFILE)`` meaning the file system has no unnamed files
_NO_TMPFILE_ERRNOS = (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL)


def _escape_name_bytes(err: UnicodeError) -> tuple[str, int]:
    """Codec error handler: a byte of a file name that is not UTF-8 (held by Python as a
    surrogate escape, U+DC80..U+DCFF) written as ``\\xNN``, anything else as ``\\uNNNN``."""
    assert isinstance(err, UnicodeEncodeError)
    bad = err.object[err.start:err.end]
    text = "".join(f"\\x{ord(c) - 0xDC00:02x}" if 0xDC80 <= ord(c) <= 0xDCFF else f"\\u{ord(c):04x}"
                   for c in bad)
    return text, err.end


codecs.register_error("omr-name-bytes", _escape_name_bytes)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_csv(
    rows: Iterable[ResultRow], path: str | Path, *, extra_columns: Sequence[str] | None = None
) -> int:
    """Write the spec §6 results CSV.

    Parameters
    ----------
    rows : iterable of ResultRow
        Streamed; written in order.
    path : str or Path
    extra_columns : sequence of str, optional
        Columns after the required ones.  Default: those of the first row's ``extra``.

    Returns
    -------
    int
        Rows written.

    Raises
    ------
    ScoringError
        A row has an extra column the header lacks (the file is left untouched).
    """
    path = Path(path)
    it: Iterator[ResultRow] = iter(rows)
    first = next(it, None)
    if extra_columns is None:
        extra_columns = [name for name, _ in first.extra] if first is not None else []
    columns = list(extra_columns)
    clash = [c for c in columns if c in RESULT_COLUMNS]
    if clash:
        raise ScoringError(f"{path}: extra column {clash[0]!r} repeats a required column")
    n = 0
    with _Replacing(path, errors="omr-name-bytes") as fh:
        writer = _CsvRows(fh)
        writer.writerow([*RESULT_COLUMNS, *columns])
        for row in itertools.chain([first] if first is not None else [], it):
            n += 1
            writer.writerow([*_cells(row), *_extra_cells(row, columns, path, n)])
    return n


def write_jsonl(rows: Iterable[ResultRow], path: str | Path) -> int:
    """Write the results as JSON Lines (one object per row, keys as the CSV columns).

    Returns
    -------
    int
        Rows written.
    """
    n = 0
    with _Replacing(path) as fh:
        for row in rows:
            record: dict[str, Any] = {
                "source": row.source,
                "page": row.page,
                "status": row.status,
                "code_number": row.code_number,
                "version": row.version,
                "responses": row.responses,
                "correct": row.correct,
                "max_points": row.max_points,
                "percent": None if row.percent is None else _percent_text(row.percent),
                "passed": row.passed,
                "flags": ";".join(row.flags),
            }
            for name, value in row.extra:
                record.setdefault(name, value)
            line = json.dumps(record, ensure_ascii=False)
            if not line.isascii():
                try:
                    line.encode("utf-8")
                except UnicodeEncodeError:  # a file name that is not UTF-8: JSON's \udcff escapes, lossless
                    line = json.dumps(record)
            fh.write(line + "\n")
            n += 1
    return n


# -- reading -------------------------------------------------------------------------------


class _Cells:
    """Typed access to one record's fields; failures name the file, line and column."""

    def __init__(self, where: str, values: dict[str, Any]) -> None:
        self.where = where
        self.values = values
        for column, value in values.items():  # no file name and no text we write holds a NUL
            if isinstance(value, str) and "\x00" in value:
                raise self.fail(column, f"a NUL character at position {value.index(chr(0)) + 1}: a results file "
                                        "holds none (it was damaged or edited with a binary tool); fix that cell")

    def fail(self, column: str, message: str) -> ScoringError:
        return ScoringError(f"{self.where}: column {column!r}: {message}")

    def text(self, column: str) -> str:
        value = self.values[column]
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self.fail(column, f"expected text, got {value!r}")
        return value

    def integer(self, column: str, *, required: bool = False) -> int | None:
        value = self.values[column]
        if value in ("", None):
            if required:
                raise self.fail(column, "empty; expected a whole number")
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        raise self.fail(column, f"{value!r} is not a whole number")

    def percent(self, column: str) -> Decimal | None:
        value = self.values[column]
        if value in ("", None):
            return None
        try:
            percent = Decimal(str(value).strip())
        except InvalidOperation:
            raise self.fail(column, f"{value!r} is not a number like 56.06") from None
        if not percent.is_finite() or not 0 <= percent <= 100:
            raise self.fail(column, f"{value!r} is not a percentage 0..100")
        return percent

    def boolean(self, column: str) -> bool | None:
        value = self.values[column]
        if value in ("", None):
            return None
        if isinstance(value, bool):
            return value
        if value in ("true", "false"):
            return value == "true"
        raise self.fail(column, f"{value!r}: expected true or false")

    def flags(self, column: str) -> tuple[str, ...]:
        value = self.values[column]
        if isinstance(value, list) and all(isinstance(f, str) for f in value):
            return tuple(value)
        return tuple(f for f in self.text(column).split(";") if f)

    def row(self, extra: tuple[tuple[str, str], ...]) -> ResultRow:
        status = self.text("status")
        if status not in STATUSES:
            raise self.fail("status", f"{status!r}: expected one of {', '.join(STATUSES)}")
        return ResultRow(
            source=self.text("source"),
            page=self.integer("page", required=True),  # type: ignore[arg-type]
            status=status,
            code_number=self.text("code_number"),
            version=self.text("version"),
            responses=self.text("responses"),
            flags=self.flags("flags"),
            correct=self.integer("correct"),
            max_points=self.integer("max_points"),
            percent=self.percent("percent"),
            passed=self.boolean("passed"),
            extra=extra,
        )


def read_csv(path: str | Path) -> list[ResultRow]:
    """Read a results CSV written by `write_csv` (or by hand / a spreadsheet, same columns).

    Columns may come in any order; columns beyond the required ones are kept in
    ``ResultRow.extra``, in file order.

    Raises
    ------
    ScoringError
        The file cannot be read, a required column is missing (named), a column
        repeats, or a cell does not parse (names the line and column).
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise ScoringError(
                    f"{path}: empty file; expected a header row with {', '.join(RESULT_COLUMNS)}"
                )
            missing = [c for c in RESULT_COLUMNS if c not in header]
            if missing:
                raise ScoringError(
                    f"{path}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                    f"(header: {', '.join(header)}); a results CSV needs {', '.join(RESULT_COLUMNS)}"
                )
            twice = sorted({c for c in header if header.count(c) > 1})
            if twice:
                raise ScoringError(f"{path}: column {twice[0]!r} appears more than once in the header")
            extra_names = [c for c in header if c not in RESULT_COLUMNS]
            rows = []
            for cells in reader:
                if not cells:
                    continue
                where = f"{path} line {reader.line_num}"
                if len(cells) != len(header):
                    raise ScoringError(f"{where}: {len(cells)} cells, but the header has {len(header)}")
                values = dict(zip(header, map(from_spreadsheet_text, cells), strict=True))
                rows.append(_Cells(where, values).row(tuple((c, values[c]) for c in extra_names)))
    except OSError as err:
        raise ScoringError(f"cannot read results {path}: {err.strerror}") from err
    except UnicodeDecodeError as err:
        raise ScoringError(f"{path}: not UTF-8 text (byte {err.start}); save the CSV as UTF-8") from None
    except csv.Error as err:
        raise ScoringError(f"{path}: not a readable CSV: {err}") from err
    return rows


def read_jsonl(path: str | Path) -> list[ResultRow]:
    """Read results written by `write_jsonl`; keys beyond the required ones go to ``extra``.

    Raises
    ------
    ScoringError
        Unreadable file, a line that is not a JSON object, a missing key, a bad value.
    """
    path = Path(path)
    rows = []
    try:
        with open(path, encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                where = f"{path} line {number}"
                try:
                    record = json.loads(line, parse_float=Decimal)
                except json.JSONDecodeError as err:
                    raise ScoringError(f"{where}: not JSON: {err.msg}") from None
                if not isinstance(record, dict):
                    raise ScoringError(f"{where}: expected a JSON object")
                missing = [c for c in RESULT_COLUMNS if c not in record]
                if missing:
                    raise ScoringError(f"{where}: missing {', '.join(missing)}; every record needs "
                                       f"{', '.join(RESULT_COLUMNS)}")
                extra = tuple((k, v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))
                              for k, v in record.items() if k not in RESULT_COLUMNS)
                rows.append(_Cells(where, record).row(extra))
    except OSError as err:
        raise ScoringError(f"cannot read results {path}: {err.strerror}") from err
    except UnicodeDecodeError as err:
        raise ScoringError(f"{path}: not UTF-8 text (byte {err.start})") from None
    return rows


def read_results(path: str | Path) -> list[ResultRow]:
    """`read_jsonl` for ``*.jsonl`` / ``*.ndjson`` files, `read_csv` otherwise."""
    if Path(path).suffix.lower() in (".jsonl", ".ndjson"):
        return read_jsonl(path)
    return read_csv(path)
