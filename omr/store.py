"""The results store: one SQLite file (WAL) holding every page a batch has read.

One process writes (the batch's main process); a page is written inside one
transaction (alone, or with the few pages read just before it: `write_outcomes`), so
a batch killed at any moment leaves every committed page complete and nothing else,
and re-running it resumes where it stopped.

Tables (schema version `SCHEMA_VERSION`, kept in ``PRAGMA user_version``)::

    pages       one row per input page: UNIQUE(source, page), and one *reading* per
                page content: UNIQUE(content_hash, page) among rows that are not
                duplicates.  Columns: source, page, content_hash, status, flags
                (effective), base_status / base_flags (as read and scored),
                duplicate_of, code_number, version, responses, correct, max_points,
                percent, passed, error_type, message, fill (box features as float16
                bytes) with fill_shape, box_states (int8 bytes), thresholds (JSON),
                rotation_deg, residual_mm, barcode, grid, load_ms / read_ms /
                total_ms, run_id (the run that read it), seen_run (the last run whose
                inputs held it), stored_at, part (the card's part on a layout of
                several parts, NULL otherwise or when unread)
    superseded  rows replaced because the file at their path changed (same columns)
    runs        one row per batch run: when, the command, and its counts
    meta        key/value: the layout the store was made for (``layout``: its name;
                ``layout_parts``: cards per candidate, when more than one); ``scoring_key``, the answer
                key JSON the store was last scored with (what the review station and the
                export re-score corrected cards with)
    review_events  the examiners' decisions, append-only (triggers refuse UPDATE and
                DELETE): `omr.review.events`

Columns and tables added after schema version 2 (no version bump: an older store gains
them when opened, `_MIGRATION` / `_ADDED_COLUMNS`): pages.path (the absolute path the
page was read from), pages.homography (layout mm -> image px, 3x3 JSON),
pages.box_shifts (float32 bytes of the (N_boxes, 2) local shifts, or NULL), pages.part,
and the review_events table.
    key_revisions  numbered answer-key revisions (the whole key as JSON, who, when,
                why); the highest number is the current key, and ``meta.scoring_key``
                follows it.  Every page row records the revision it was scored with
                (``pages.key_revision``, added like the columns above)

Policies (what a re-run or an odd batch does):

* **Same page again** (same path, same content hash, same page): skipped; the
  stored row is kept as is.
* **Same content under another path** (a file copied, a folder fed twice): not read
  again; the page gets its own row, a copy of the first reading with status
  ``review`` (``error`` rows stay ``error``) and the flag
  ``duplicate_page:<first source>``, and it does not count as a second card (no
  ``duplicate_code`` from it).
* **A file whose content changed at the same path** (a page re-scanned into the same
  name): the new content is read; every stored row of that path with the old content
  moves to ``superseded``; a duplicate of the old content, if any, becomes the
  reading of it.
* **A file that cannot be read now** but was stored before: the stored row is kept;
  a page that failed to open before is retried on every run.
* **One key per store**: every page is scored with the current key revision.  Adding
  a revision (`ResultStore.apply_key`: ``omr key add``, ``omr rescore --db``, or an
  ``omr scan --key`` whose key differs from the current one) re-scores every stored
  page in the same transaction; a write group scored with an older revision (a scan
  that started before the revision was added) is re-scored with the current one
  inside its own write transaction, so the two serialise and never mix.  An export
  refuses a store whose rows carry different revisions (an older omr wrote to it).
* **Duplicate code numbers**: every row whose code number is carried by more than
  one card of the same part (rows that are not ``duplicate_page`` copies; on a layout
  without parts every card is of the one part) gets ``duplicate_code`` and status
  ``review``; kept up to date on every write, whichever page came first.  The two
  parts of one candidate carry the same code number and are no duplicates.
"""

from __future__ import annotations

import fcntl
import functools
import inspect
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from omr.errors import OmrError, StoreError, StoreLockedError
from omr.flags import Flag, decide_status
from omr.pages import PageRef
from omr.pipeline import PageOutcome
from omr.review.events import MachineCard, NewEvent, ReviewEvent
from scoring.results import ResultRow

if TYPE_CHECKING:
    from scoring import AnswerKey, RescoreReport

__all__ = [
    "DUPLICATE_CODE",
    "DUPLICATE_PAGE",
    "MESSAGE_COLUMN",
    "PART_COLUMN",
    "SCHEMA_VERSION",
    "SCORING_KEY",
    "FillMatrix",
    "KeyApplied",
    "KeyRevision",
    "PageGeometry",
    "PagePlan",
    "ResultStore",
    "StatusCounts",
    "StoredRow",
    "effective_status_flags",
    "flag_path",
    "open_store",
    "store_fault",
]

#: 2: content hashes are BLAKE3 (1: SHA-256; such a store would read every page again)
SCHEMA_VERSION = 2
#: flag on every card whose code number another card carries
DUPLICATE_CODE = Flag.DUPLICATE_CODE.value
#: flag prefix on a page whose content was already stored under another path
DUPLICATE_PAGE = Flag.DUPLICATE_PAGE.value
#: meta key holding the answer key JSON the store is scored with
SCORING_KEY = "scoring_key"

_COLUMNS = """
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    page INTEGER NOT NULL CHECK (page >= 1),
    content_hash TEXT,
    status TEXT NOT NULL CHECK (status IN ('ok', 'review', 'error')),
    flags TEXT NOT NULL DEFAULT '',
    base_status TEXT NOT NULL CHECK (base_status IN ('ok', 'review', 'error')),
    base_flags TEXT NOT NULL DEFAULT '',
    duplicate_of TEXT,
    code_number TEXT NOT NULL DEFAULT '',
    version TEXT NOT NULL DEFAULT '',
    responses TEXT NOT NULL DEFAULT '',
    correct INTEGER,
    max_points INTEGER,
    percent TEXT,
    passed INTEGER,
    error_type TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL DEFAULT '',
    fill BLOB,
    fill_shape TEXT,
    box_states BLOB,
    thresholds TEXT,
    rotation_deg INTEGER,
    residual_mm REAL,
    barcode TEXT,
    grid TEXT,
    load_ms REAL,
    read_ms REAL,
    total_ms REAL,
    run_id INTEGER,
    seen_run INTEGER,
    stored_at TEXT NOT NULL
"""

_SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    command TEXT NOT NULL DEFAULT '',
    pages INTEGER, ok INTEGER, review INTEGER, error INTEGER, read INTEGER, skipped INTEGER,
    elapsed_s REAL
);
CREATE TABLE pages ({_COLUMNS});
CREATE UNIQUE INDEX pages_source_page ON pages (source, page);
CREATE UNIQUE INDEX pages_content_page ON pages (content_hash, page) WHERE duplicate_of IS NULL;
CREATE INDEX pages_code ON pages (code_number) WHERE code_number <> '';
CREATE INDEX pages_seen ON pages (seen_run);
CREATE TABLE superseded ({_COLUMNS.replace("PRIMARY KEY", "")}, superseded_at TEXT NOT NULL);
"""

#: columns added after schema version 2 to ``pages`` and ``superseded`` when missing, at
#: every open (idempotent; append lines here rather than bumping SCHEMA_VERSION)
_ADDED_COLUMNS = (
    ("path", "TEXT"),
    ("homography", "TEXT"),
    ("box_shifts", "BLOB"),
    ("part", "INTEGER"),
    ("key_revision", "INTEGER"),
    # 1 once a page whose worker crashed was read again by a later run (retried once)
    ("crash_retried", "INTEGER NOT NULL DEFAULT 0"),
)
#: tables, indexes and triggers created at every open when missing (same rule)
_MIGRATION = """
CREATE TABLE IF NOT EXISTS review_events (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    examiner TEXT NOT NULL CHECK (examiner <> ''),
    source TEXT NOT NULL,
    page INTEGER NOT NULL,
    content_hash TEXT NOT NULL,
    field TEXT NOT NULL,
    value_before TEXT NOT NULL DEFAULT '',
    value_after TEXT NOT NULL DEFAULT '',
    entry_round INTEGER NOT NULL DEFAULT 1 CHECK (entry_round IN (1, 2, 3)),
    reason TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT '',
    undoes INTEGER REFERENCES review_events (id)
);
CREATE TABLE IF NOT EXISTS key_revisions (
    id INTEGER PRIMARY KEY,
    key_json TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    reason TEXT NOT NULL,
    source TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS review_events_page ON review_events (source, page, content_hash);
-- a page is known by its file's absolute path, whatever form of the path a run was given
CREATE INDEX IF NOT EXISTS pages_path ON pages (path, page);
-- which pages each run's inputs held (iter_rows(run_id=...)): a page a later run saw
-- too still belongs to the earlier one's export
CREATE TABLE IF NOT EXISTS run_pages (
    run_id INTEGER NOT NULL,
    page_id INTEGER NOT NULL,
    PRIMARY KEY (run_id, page_id)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS review_events_no_update BEFORE UPDATE ON review_events
BEGIN SELECT RAISE(ABORT, 'review_events is append-only: record a compensating event instead'); END;
CREATE TRIGGER IF NOT EXISTS review_events_no_delete BEFORE DELETE ON review_events
BEGIN SELECT RAISE(ABORT, 'review_events is append-only: record a compensating event instead'); END;
"""

#: pages columns written for a page, in order
_WRITE_COLUMNS = (
    "source", "page", "content_hash", "status", "flags", "base_status", "base_flags", "duplicate_of",
    "code_number", "version", "responses", "correct", "max_points", "percent", "passed", "error_type",
    "message", "fill", "fill_shape", "box_states", "thresholds", "rotation_deg", "residual_mm",
    "barcode", "grid", "load_ms", "read_ms", "total_ms", "run_id", "seen_run", "stored_at",
    *(name for name, _ in _ADDED_COLUMNS),
)  # fmt: skip
_INSERT = f"INSERT INTO pages ({', '.join(_WRITE_COLUMNS)}) VALUES ({', '.join('?' * len(_WRITE_COLUMNS))})"
_INSERT_WITH_ID = (f"INSERT INTO pages (id, {', '.join(_WRITE_COLUMNS)}) "
                   f"VALUES ({', '.join('?' * (1 + len(_WRITE_COLUMNS)))})")
#: how long opening a store is tried again while another process creates it
_OPEN_RETRY_S = 5.0
#: the flag of a page whose worker process died reading it (`omr.batch.WORKER_CRASHED`)
_WORKER_CRASHED = "worker_crashed"
_ROW_COLUMNS = (
    "source, page, {status}, code_number, version, responses, correct, max_points, percent, passed, "
    "{flags}, error_type, message, content_hash, duplicate_of, part"
)
#: export column after the spec §6 ones: the human explanation of an error row
MESSAGE_COLUMN = "message"
#: export column before ``message`` in a store of cards of several parts: the card's part
PART_COLUMN = "part"


@dataclass(frozen=True, slots=True)
class PageGeometry:
    """Where the reader put a stored page's card in its image.

    path : the file it was read from (absolute when the store recorded it)
    content_hash : BLAKE3 of that file when it was read
    homography : (3, 3) float64, layout millimetres -> image pixels
    box_shifts_mm : (N_boxes, 2) float64 local shifts (``registration_local``), or None
    rotation_deg : how the page was turned in the scan
    """

    path: str
    content_hash: str
    homography: NDArray[np.float64]
    box_shifts_mm: NDArray[np.float64] | None
    rotation_deg: int


@dataclass(frozen=True, slots=True)
class PagePlan:
    """What a batch does with a page: ``read`` it, ``skip`` it (stored), or store it as
    an ``alias`` of the same content already stored under ``original``."""

    action: str
    original: str = ""


@dataclass(frozen=True, slots=True)
class StoredRow:
    """A stored page as exported: its results row plus the error explanation.

    row : the spec §6 row (effective status and flags)
    message : human explanation on error rows ("" otherwise)
    error_type : exception class on error rows
    content_hash : BLAKE3 of the page's file ("" when it could not be read)
    duplicate_of : first source of the same content, "" for a first reading
    part : the card's part on a layout of several parts (None otherwise or unread)
    """

    row: ResultRow
    message: str = ""
    error_type: str = ""
    content_hash: str = ""
    duplicate_of: str = ""
    part: int | None = None


@dataclass(frozen=True, slots=True)
class KeyRevision:
    """One stored answer-key revision.

    number : 1, 2, ... in the order they were added; the highest is the current key
    key : the whole key, as validated (`scoring.key_to_dict` form)
    created_at : UTC time ``2026-12-03T07:30:00Z``
    created_by, reason : who added it and why (``omr key add --by --reason``)
    source : the key file it came from
    """

    number: int
    key: AnswerKey
    created_at: str
    created_by: str
    reason: str
    source: str


@dataclass(frozen=True, slots=True)
class KeyApplied:
    """What `ResultStore.apply_key` did.

    revision : the store's current revision afterwards
    previous : the one before (None on a store that had none)
    added : a new revision was stored (False: the key was the current one already)
    same_as : an older revision with the same key (a revision reverted to), else None
    report : the re-scoring of the pages that were scored with another revision
        (all of them when ``added``); None when none needed it
    """

    revision: KeyRevision
    previous: KeyRevision | None
    added: bool
    same_as: int | None
    report: RescoreReport | None


@dataclass(frozen=True, slots=True)
class StatusCounts:
    """Pages per status."""

    ok: int = 0
    review: int = 0
    error: int = 0

    @property
    def pages(self) -> int:
        return self.ok + self.review + self.error


@dataclass(frozen=True, slots=True)
class FillMatrix:
    """The stored measurements of one card.

    features : (N_boxes, F) float32, box features (float16 precision) in
        ``layout.box_centers()`` order, columns ``omr.grid.FEATURE_NAMES`` (pages
        stored before the ``spread`` column have the first seven: the shape is kept with each)
    states : (N_boxes,) int8, 0 blank, 1 marked, 2 ambiguous
    """

    features: NDArray[np.float32]
    states: NDArray[np.int8]


def effective_status_flags(
    base_status: str, base_flags: Sequence[str], duplicate_of: str | None, duplicate_code: bool
) -> tuple[str, tuple[str, ...]]:
    """Status and flags of a stored page once the store-wide checks are applied.

    Examples
    --------
    >>> effective_status_flags("ok", (), None, True)
    ('review', ('duplicate_code',))
    >>> effective_status_flags("error", ("markers_not_found",), "a.jpg", False)
    ('error', ('markers_not_found', 'duplicate_page:a.jpg'))
    >>> effective_status_flags("ok", (), "odd;name%.jpg", False)[1]
    ('duplicate_page:odd%3Bname%25.jpg',)
    """
    store_flags = [f"{DUPLICATE_PAGE}:{flag_path(duplicate_of)}"] if duplicate_of else []
    if duplicate_code:
        store_flags.append(DUPLICATE_CODE)
    # the page's own flags were judged when it was read and scored (base_status, which
    # a person may have settled since): only the store's own add to it here
    flags = (*(f for f in base_flags if not _is_store_flag(f)), *store_flags)
    return decide_status(store_flags, at_least=base_status), flags


def flag_path(path: str) -> str:
    """A path as it appears inside a flag: ``%`` and ``;`` (the flags' separator) written
    ``%25`` and ``%3B``, so a file name cannot add flags to a row."""
    return path.replace("%", "%25").replace(";", "%3B")


def _enc(text: str | None) -> str | bytes | None:
    """Text as SQLite stores it: as is, or its bytes (a BLOB) when it holds a file name
    that is not valid UTF-8 (Python gives such names with surrogate escapes, which
    SQLite's UTF-8 cannot hold).  Lossless; `_dec` turns it back."""
    if text is None or text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape")
    return text


def _dec(value: str | bytes | None) -> str | None:
    """A text column's value as `_enc` stored it."""
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


def _is_store_flag(flag: str) -> bool:
    """Whether the store sets this flag (from the whole store, not from the page)."""
    return flag == DUPLICATE_CODE or flag.startswith(DUPLICATE_PAGE + ":")


def _join(flags: Sequence[str]) -> str | bytes:
    return _enc(";".join(flags)) or ""


def _split(flags: str | bytes) -> tuple[str, ...]:
    text = _dec(flags)
    return tuple(text.split(";")) if text else ()


def _flat_fields(record: object) -> dict[str, object]:
    """``dataclasses.asdict`` of a dataclass of scalars, without its deep copy (~0.1 ms a page)."""
    return {f.name: getattr(record, f.name) for f in fields(record)}  # type: ignore[arg-type]


def _outcome_values(outcome: PageOutcome) -> dict[str, object]:
    """The columns of a page's row that come from its reading (fill matrix, thresholds, timings)."""
    reading, t = outcome.reading, outcome.timings
    values: dict[str, object] = {
        "path": _enc(outcome.ref.path) or None,
        "error_type": outcome.error_type,
        "message": _enc(outcome.message),
        "load_ms": t.load_s * 1e3,
        "read_ms": t.read_s * 1e3,
        "total_ms": t.total_s * 1e3,
    }
    if reading is not None:
        features = np.asarray(reading.box_features, dtype=np.float16)
        values |= {
            "fill": features.tobytes(),
            "fill_shape": "x".join(map(str, features.shape)),
            "box_states": np.asarray(reading.box_states, dtype=np.int8).tobytes(),
            "thresholds": json.dumps(_flat_fields(reading.thresholds)),
            "rotation_deg": int(reading.rotation_deg),
            "residual_mm": float(reading.registration_residual_mm),
            "barcode": reading.barcode,
            "grid": reading.grid,
            "homography": json.dumps(np.asarray(reading.homography, dtype=float).tolist()),
            "box_shifts": None if reading.box_shifts_mm is None
            else np.asarray(reading.box_shifts_mm, dtype=np.float32).tobytes(),
            "part": int(reading.part) if reading.part else None,
        }
    return values


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def store_fault(path: Path, err: sqlite3.Error) -> StoreError:
    """The `StoreError` for an SQLite failure on the store at ``path``: what and what to do.

    >>> print(store_fault(Path("r.sqlite"), sqlite3.OperationalError("database or disk is full")))
    r.sqlite: the disk is full (database or disk is full): free space on its disk (or give --db on \
another disk), then run the same command again: the pages already stored are kept and not read again
    """
    name = getattr(err, "sqlite_errorname", "") or ""
    text = str(err)
    lower = text.lower()
    resume = "then run the same command again: the pages already stored are kept and not read again"
    if name.startswith("SQLITE_FULL") or "disk is full" in lower:
        what = f"the disk is full ({text}): free space on its disk (or give --db on another disk), {resume}"
    elif name.startswith("SQLITE_READONLY") or "readonly" in lower:
        what = (f"cannot be written, it is read-only ({text}): make the file, its folder and its -wal and "
                "-shm files writable, or give another --db")
    elif name.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")) or "not a database" in lower or "malformed" in lower:
        what = (f"not a usable results store ({text}): the file is not a store or is damaged; give another "
                "--db (keep this one: its committed pages may be recoverable with sqlite3's .recover)")
    elif name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in lower:
        what = f"in use by another process ({text}): wait for the other omr to finish, or give another --db"
    elif name.startswith("SQLITE_CANTOPEN") or "unable to open" in lower:
        what = f"cannot be opened ({text}): check that its folder exists and is writable"
    elif name.startswith("SQLITE_IOERR") or "i/o error" in lower:
        what = (f"cannot be written ({text}): the disk may be full, over a file size limit ('ulimit -f'), "
                f"failing or gone; fix that, {resume}")
    else:
        what = f"the results store failed ({type(err).__name__}: {text}); check the disk, or give another --db"
    return StoreError(f"{path}: {what}")


def _faults(method: Callable) -> Callable:
    """Decorate a `ResultStore` method: an SQLite failure inside it becomes `store_fault`."""
    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def generator(self: ResultStore, *args: object, **kwargs: object) -> Iterator:
            try:
                yield from method(self, *args, **kwargs)
            except sqlite3.Error as err:
                raise store_fault(self.path, err) from err

        return generator

    @functools.wraps(method)
    def wrapper(self: ResultStore, *args: object, **kwargs: object) -> object:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as err:
            raise store_fault(self.path, err) from err

    return wrapper


def open_store(
    path: str | Path, *, layout_name: str | None = None, layout_parts: int = 1, writer: bool = False
) -> ResultStore:
    """Open (creating if needed) the store at ``path``; see `ResultStore`.

    Raises
    ------
    StoreError
        The file is not a store, has another schema version, or was made for another
        layout than ``layout_name``.
    StoreLockedError
        ``writer`` and another process holds the store as its writer.
    """
    return ResultStore(path, layout_name=layout_name, layout_parts=layout_parts, writer=writer)


class ResultStore:
    """A results store on one SQLite file, used by a single writer.

    Parameters
    ----------
    path : str or Path
        The ``.sqlite`` file; created with its schema when missing.
    layout_name : str, optional
        The card layout of the batch; recorded on creation, checked afterwards.
    layout_parts : int
        Cards per candidate of that layout (`CardLayout.part_count`), recorded with it.
    writer : bool
        Hold the store as its one writer until `close` (an ``omr scan``): a second
        writer is refused with `StoreLockedError` instead of both runs' rows mixing.
        The lock is ``flock`` on ``<store>.lock`` beside it, released by the system
        when the process ends, however it ends.

    Raises
    ------
    StoreError
        See `open_store`.
    """

    def __init__(
        self, path: str | Path, *, layout_name: str | None = None, layout_parts: int = 1, writer: bool = False
    ) -> None:
        self.path = Path(path)
        self._lock_fd: int | None = None
        self._run_pages: list[tuple[int, int]] = []  # (run, row id) pairs of the open transaction
        if writer:
            self._lock_writer()
        self._key_cache: dict[int, AnswerKey] = {}
        #: set when a write group had been scored with another revision than the current
        #: one (a revision added while this process was scanning): the current revision
        self.late_revision: int | None = None
        try:
            mode = self._connect(layout_name)
            got = self._db.execute("SELECT value FROM meta WHERE key='layout_parts'").fetchone()
            if layout_name and layout_parts > 1 and got is None:
                with self._tx():
                    self._db.execute("INSERT OR IGNORE INTO meta VALUES ('layout_parts', ?)",
                                     (str(layout_parts),))
                got = (str(layout_parts),)
            #: cards per candidate of the store's layout (1 unless recorded)
            self.layout_parts = int(got[0]) if got else 1
        except sqlite3.Error as err:
            self._unlock()
            raise store_fault(self.path, err) from err
        if mode.lower() != "wal":
            raise StoreError(f"{self.path}: cannot switch to WAL journaling (got {mode!r}); use a local disk")

    # -- lifecycle --------------------------------------------------------------------
    def _connect(self, layout_name: str | None) -> str:
        """Connect, switch to WAL, make or check the schema; return the journal mode.

        Runs starting together on one new store can get "database is locked" at once,
        without the busy timeout (switching a new file to WAL): the open is tried again
        for a few seconds (every step of it is idempotent) before that is an error."""
        deadline = time.monotonic() + _OPEN_RETRY_S
        while True:
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
            try:
                self._db.execute("PRAGMA busy_timeout = 30000")
                mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                self._db.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable across kill -9
                self._init_schema(layout_name)
                return str(mode)
            except sqlite3.OperationalError as err:
                self._db.close()
                if "locked" not in str(err) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _init_schema(self, layout_name: str | None) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        has_tables = self._db.execute("SELECT count(*) FROM sqlite_master WHERE type='table'").fetchone()[0]
        if version == 0 and not has_tables and self._create_schema(layout_name):
            self._migrate()
            return
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: store schema version {version}, this omr reads version {SCHEMA_VERSION}; "
                "export it with the omr that wrote it, or start a new --db"
            )
        stored = self._db.execute("SELECT value FROM meta WHERE key='layout'").fetchone()
        if layout_name and stored and stored[0] != layout_name:
            raise StoreError(
                f"{self.path}: holds cards of layout {stored[0]!r}, this batch reads {layout_name!r}; "
                "use another --db for another card"
            )
        if layout_name and not stored:
            with self._tx():
                self._db.execute("INSERT OR IGNORE INTO meta VALUES ('layout', ?)", (layout_name,))
        self._migrate()

    def _create_schema(self, layout_name: str | None) -> bool:
        """Create the schema of a new store; False when another process made it first.

        Checked again under the write lock: two runs starting on one new store both saw
        it empty, and the second's CREATE TABLE failed ("table meta already exists")."""
        with self._tx():
            if self._db.execute("SELECT count(*) FROM sqlite_master WHERE type='table'").fetchone()[0]:
                return False
            for statement in _split_script(_SCHEMA):
                self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            if layout_name:
                self._db.execute("INSERT INTO meta VALUES ('layout', ?)", (layout_name,))
        return True

    def _migrate(self) -> None:
        """Add the columns and tables of `_ADDED_COLUMNS` / `_MIGRATION` that are missing.

        Idempotent and cheap when nothing is missing (no write then), so every open runs
        it and an older store stays readable; other additions append to those two lists.
        """
        if not self._missing_parts():
            return
        with self._tx():  # looked at again under the write lock: another process may have migrated
            for table, name, decl in self._missing_parts() or []:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")
            for statement in _split_script(_MIGRATION):
                self._db.execute(statement)

    def _missing_parts(self) -> list[tuple[str, str, str]] | None:
        """The columns `_migrate` must add; None when nothing at all is missing."""
        missing = [
            (table, name, decl)
            for table in ("pages", "superseded")
            for have in [{r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}]
            for name, decl in _ADDED_COLUMNS
            if name not in have
        ]
        names = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master")}
        if not missing and {"review_events", "review_events_no_update", "review_events_no_delete",
                            "key_revisions", "pages_path", "run_pages"} <= names:
            return None
        return missing

    @property
    def layout_name(self) -> str:
        """The layout the store was made for ("" when none was recorded)."""
        return self.meta("layout") or ""

    def _lock_writer(self) -> None:
        """Take the writer's lock (see the ``writer`` parameter)."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        except OSError as err:
            raise StoreError(f"{lock_path}: cannot create the store's lock file: {err.strerror or err}; "
                             "give a --db in a folder you can write") from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "a process"
            os.close(fd)
            raise StoreLockedError(
                f"{self.path}: another omr scan is writing this store ({holder}); wait for it to finish "
                "(running the same scan then only reads what it left), or give another --db"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"omr scan pid {os.getpid()} since {_now()}".encode(), 0)
        self._lock_fd = fd

    def _unlock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)

    def close(self) -> None:
        """Close the connection (committed pages are already on disk); release the lock."""
        self._db.close()
        self._unlock()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _tx(self) -> _Transaction:
        return _Transaction(self._db, before_commit=self._flush_run_pages)

    def _flush_run_pages(self) -> None:
        """Record the (run, page) pairs `_seen` gathered, in one statement before the commit."""
        if self._run_pages:
            self._db.executemany("INSERT OR IGNORE INTO run_pages VALUES (?, ?)", self._run_pages)
            self._run_pages.clear()

    # -- runs -------------------------------------------------------------------------
    @_faults
    def begin_run(self, command: str = "") -> int:
        """Record the start of a batch run; return its id."""
        with self._tx():
            cur = self._db.execute("INSERT INTO runs (started_at, command) VALUES (?, ?)", (_now(), command))
        assert cur.lastrowid is not None
        return cur.lastrowid

    @_faults
    def finish_run(self, run_id: int, *, read: int, skipped: int, elapsed_s: float) -> StatusCounts:
        """Record the end of a run with the counts of its pages; return those counts."""
        counts = self.counts(run_id)
        with self._tx():
            self._db.execute(
                "UPDATE runs SET finished_at=?, pages=?, ok=?, review=?, error=?, read=?, skipped=?, "
                "elapsed_s=? WHERE id=?",
                (_now(), counts.pages, counts.ok, counts.review, counts.error, read, skipped, elapsed_s,
                 run_id),
            )  # fmt: skip
        return counts

    @_faults
    def has_run(self, run_id: int) -> bool:
        """Whether the store holds run ``run_id``."""
        return self._db.execute("SELECT 1 FROM runs WHERE id=?", (run_id,)).fetchone() is not None

    @_faults
    def run_ids(self) -> list[int]:
        """The ids of the store's runs, in order."""
        return [r for (r,) in self._db.execute("SELECT id FROM runs ORDER BY id")]

    # -- planning ---------------------------------------------------------------------
    def _find(self, ref: PageRef) -> tuple | None:
        """The stored row of ``ref``'s page: ``(id, content_hash, seen_run, base_flags,
        crash_retried)``, found by the file's absolute path (any form of the path given
        finds it), else by its source (rows of stores made before paths were kept, or
        the same name given from another folder)."""
        return self._db.execute(
            "SELECT id, content_hash, seen_run, base_flags, crash_retried FROM pages "
            "WHERE page=? AND (path=? OR source=?) ORDER BY path IS NOT ? LIMIT 1",
            (ref.page, _enc(ref.path), _enc(ref.source), _enc(ref.path)),
        ).fetchone()

    @_faults
    def plan(self, ref: PageRef, *, run_id: int | None = None) -> PagePlan:
        """Decide what to do with ``ref`` given what is stored (see the module policies).

        A page already stored by run ``run_id`` itself is skipped (handled once per run).
        A page whose worker process crashed is read again, once, by a later run.
        """
        stored = self._find(ref)
        if stored is not None:
            if run_id is not None and stored[2] == run_id:
                return PagePlan("skip")
            if not ref.content_hash:
                return PagePlan("skip" if stored[1] else "read")
            if stored[1] == ref.content_hash:
                crashed = _WORKER_CRASHED in _split(stored[3]) and not stored[4]
                return PagePlan("read" if crashed else "skip")
        if ref.content_hash:
            original = self._db.execute(
                "SELECT source FROM pages WHERE content_hash=? AND page=? AND duplicate_of IS NULL",
                (ref.content_hash, ref.page),
            ).fetchone()
            if original is not None and (stored is None or stored[1] != ref.content_hash):
                return PagePlan("alias", original=_dec(original[0]) or "")
        return PagePlan("read")

    @_faults
    def mark_seen(self, refs: Iterable[PageRef], run_id: int) -> None:
        """Record that ``run_id``'s inputs held these stored pages (one transaction)."""
        with self._tx():
            for r in refs:
                stored = self._find(r)
                if stored is not None:
                    self._seen(stored[0], run_id, r)

    def _seen(self, row_id: int, run_id: int | None, ref: PageRef | None) -> None:
        """Record inside the caller's transaction that run ``run_id`` held row ``row_id``
        (and the file's absolute path, for a row stored without it; ``ref`` None: the row
        was just written with them)."""
        if run_id is None:
            return
        if ref is not None:
            self._db.execute("UPDATE pages SET seen_run=?, path=coalesce(path, ?) WHERE id=?",
                             (run_id, _enc(ref.path), row_id))
        self._run_pages.append((run_id, row_id))

    # -- writing ----------------------------------------------------------------------
    def write_outcome(
        self, outcome: PageOutcome, row: ResultRow, run_id: int | None = None, *, key_revision: int | None = None
    ) -> str:
        """Store one page atomically; return its effective status.

        Parameters
        ----------
        outcome : PageOutcome
            From `omr.pipeline.process_page` (fill matrix, thresholds, timings).
        row : ResultRow
            ``outcome.row`` after scoring.
        run_id : int, optional
            The run writing it (`begin_run`).

        Notes
        -----
        Idempotent: a page already stored with the same content is left alone.
        """
        return self.write_outcomes([(outcome, row)], run_id, key_revision=key_revision)[0]

    @_faults
    def write_outcomes(
        self,
        scored: Sequence[tuple[PageOutcome, ResultRow]],
        run_id: int | None = None,
        *,
        key_revision: int | None = None,
    ) -> list[str]:
        """Store several pages in one transaction (each whole or, on a failure, none).

        ``scored`` holds pairs as `write_outcome` takes them; returns their effective
        statuses in order.  One commit for a few pages instead of one each: a batch
        writes a page in ~0.3 ms, of which the commit is a third.  ``key_revision`` is
        the revision the rows were scored with; when the store's current revision is
        another (or the rows name none), they are scored again with the current one
        inside the write transaction and `late_revision` is set.
        """
        with self._tx():
            current = self._current_number()
            rows = [row for _, row in scored]
            if current is not None and key_revision != current:
                # scored with another key than the store's now (a revision was added while
                # this scan ran): score them again here, under the same write lock
                rows = self._scorer()(rows, self._revision_key(current))
                self.late_revision = current
            return [self._write(o.ref, row, None, _outcome_values(o) | {"key_revision": current}, run_id)
                    for (o, _), row in zip(scored, rows, strict=True)]

    @_faults
    def write_alias(self, ref: PageRef, original: str, run_id: int | None = None) -> str:
        """Store ``ref`` as a copy of the reading of the same content at ``original``.

        Returns the effective status; raises StoreError when the original is not stored.
        """
        copied = [c for c in _WRITE_COLUMNS if c not in ("source", "page", "content_hash", "duplicate_of",
                                                        "status", "flags", "run_id", "seen_run", "stored_at",
                                                        "path", "crash_retried")]
        with self._tx():
            src = self._db.execute(
                f"SELECT {', '.join(copied)} FROM pages WHERE source=? AND page=? AND content_hash=?",
                (_enc(original), ref.page, ref.content_hash),
            ).fetchone()
            if src is None:
                raise StoreError(f"{self.path}: {original} page {ref.page} is not stored; cannot copy it "
                                 f"for {ref.source}")
            values = dict(zip(copied, src, strict=True))
            base = ResultRow(source=ref.source, page=ref.page, status=str(values.pop("base_status")),
                             flags=_split(str(values.pop("base_flags"))))
            return self._write(ref, base, original, values, run_id, scores_from=values)

    def _write(
        self,
        ref: PageRef,
        row: ResultRow,
        duplicate_of: str | None,
        values: dict[str, object],
        run_id: int | None,
        scores_from: dict[str, object] | None = None,
    ) -> str:
        """Insert one page inside the caller's transaction (superseding a changed file)."""
        db = self._db
        content_hash = ref.content_hash or None
        existing = self._find(ref)
        retry = False
        if existing is not None and existing[1] is not None and existing[1] == content_hash:
            retry = _WORKER_CRASHED in _split(existing[3]) and not existing[4]
            if not retry:
                self._seen(existing[0], run_id, ref)
                return self._status(existing[0])
        if content_hash is None and existing is not None and existing[1] is not None:
            self._seen(existing[0], run_id, ref)  # cannot read it now; keep the reading of it we have
            return self._status(existing[0])
        if retry:  # read again after its worker crashed: this reading replaces that row
            assert existing is not None
            moved_ids = [existing[0]]
            codes = {c for (c,) in db.execute("SELECT code_number FROM pages WHERE id=?", moved_ids) if c}
            db.execute("DELETE FROM pages WHERE id=?", moved_ids)
            if _WORKER_CRASHED in row.flags:
                said = _dec(values.get("message")) or ""  # type: ignore[arg-type]
                values = {**values, "message": _enc(f"{said} (it crashed a worker on an earlier run too: "
                                                    "not retried again; check or re-save the file)")}
        else:
            codes, moved_ids = self._supersede(ref, content_hash)
        if scores_from is None:
            score_values: dict[str, object] = {
                "code_number": row.code_number,
                "version": row.version,
                "responses": row.responses,
                "correct": row.correct,
                "max_points": row.max_points,
                "percent": None if row.percent is None else str(row.percent),
                "passed": None if row.passed is None else int(row.passed),
            }
        else:
            score_values = {}
        record = {
            "source": _enc(ref.source),
            "page": ref.page,
            "content_hash": content_hash,
            "status": row.status,
            "flags": _join(row.flags),
            "base_status": row.status,
            "base_flags": _join(row.flags),
            "duplicate_of": _enc(duplicate_of),
            "run_id": run_id,
            "seen_run": run_id,
            "stored_at": _now(),
            "path": _enc(ref.path),
            "crash_retried": int(retry),
            **score_values,
            **values,
        }
        try:
            row_id = self._insert(record, retry, moved_ids)
        except sqlite3.IntegrityError:
            first = None if duplicate_of is not None or content_hash is None else db.execute(
                "SELECT source FROM pages WHERE content_hash=? AND page=? AND duplicate_of IS NULL",
                (content_hash, ref.page)).fetchone()
            if first is None:
                raise
            # the same content read under another path meanwhile (not by this batch, which
            # plans such a page as a copy): this reading is kept as a copy of that one
            record["duplicate_of"] = first[0]
            row_id = self._insert(record, retry, moved_ids)
        self._seen(row_id, run_id, None)
        code = str(record.get("code_number") or "")
        self._refresh(codes | ({code} if code else set()), ids=[row_id])
        return self._status(row_id)

    def _insert(self, record: dict[str, object], retry: bool, moved_ids: list[int]) -> int:
        """Insert a page row; return its id (see `_write`)."""
        db = self._db
        params = tuple(record.get(c) for c in _WRITE_COLUMNS)
        if retry:  # the same row, read again: it keeps its id
            row_id = db.execute(_INSERT_WITH_ID, (moved_ids[0], *params)).lastrowid
        elif moved_ids:
            # a new id above every id moved out: an id is never reused, so a run's list of
            # pages (run_pages) never points at another page's row
            top = max(db.execute("SELECT coalesce(max(id), 0) FROM pages").fetchone()[0], *moved_ids)
            row_id = db.execute(_INSERT_WITH_ID, (top + 1, *params)).lastrowid
        else:
            row_id = db.execute(_INSERT, params).lastrowid
        assert row_id is not None
        return row_id

    def _status(self, row_id: int) -> str:
        return str(self._db.execute("SELECT status FROM pages WHERE id=?", (row_id,)).fetchone()[0])

    def _supersede(self, ref: PageRef, content_hash: str | None) -> tuple[set[str], list[int]]:
        """Move rows of ``ref``'s file (by path or by source) with other content to
        ``superseded``; return their codes and ids."""
        db = self._db
        same_file = "(path=? OR source=?)"
        if content_hash is None:
            where, params = f"{same_file} AND page=?", (_enc(ref.path), _enc(ref.source), ref.page)
        else:
            where, params = f"{same_file} AND content_hash IS NOT ?", (_enc(ref.path), _enc(ref.source),
                                                                        content_hash)
        old = db.execute(f"SELECT id, content_hash, page, code_number, duplicate_of FROM pages WHERE {where}",
                         params).fetchall()
        if not old:
            return set(), []
        ids = [r[0] for r in old]
        marks = ",".join("?" * len(ids))
        columns = ", ".join(("id", *_WRITE_COLUMNS))  # by name: columns were added after superseded_at
        db.execute(f"INSERT INTO superseded ({columns}, superseded_at) SELECT {columns}, ? FROM pages "
                   f"WHERE id IN ({marks})", (_now(), *ids))
        db.execute(f"DELETE FROM pages WHERE id IN ({marks})", ids)
        codes = {r[3] for r in old if r[3]}
        for _, old_hash, old_page, _, dup_of in old:
            if old_hash is None or dup_of is not None:
                continue
            aliases = db.execute(
                "SELECT id, source FROM pages WHERE content_hash=? AND page=? AND duplicate_of IS NOT NULL "
                "ORDER BY id",
                (old_hash, old_page),
            ).fetchall()
            if aliases:  # the first copy becomes the reading of that content
                db.execute("UPDATE pages SET duplicate_of=NULL WHERE id=?", (aliases[0][0],))
                db.executemany("UPDATE pages SET duplicate_of=? WHERE id=?",
                               [(aliases[0][1], a[0]) for a in aliases[1:]])
                codes |= {c for (c,) in db.execute(
                    "SELECT code_number FROM pages WHERE content_hash=? AND page=? AND code_number <> ''",
                    (old_hash, old_page))}
                self._refresh(set(), ids=[a[0] for a in aliases])
        return codes, ids

    def _refresh(self, codes: set[str], ids: Sequence[int | None] = ()) -> None:
        """Recompute effective status/flags of the rows carrying ``codes`` and rows ``ids``."""
        db = self._db
        select = "SELECT id, base_status, base_flags, duplicate_of, code_number, status, flags, part FROM pages "
        rows: list[tuple] = []
        for code in codes:
            rows += db.execute(select + "WHERE code_number=?", (code,)).fetchall()
        for row_id in ids:
            rows += db.execute(select + "WHERE id=?", (row_id,)).fetchall()
        self._apply(rows, self._duplicate_codes({r[4] for r in rows if r[4]}))

    def _duplicate_codes(self, codes: set[str] | None) -> set[tuple[str, int | None]]:
        """Which (code number, part) pairs of ``codes`` (all when None) more than one card carries."""
        sql = ("SELECT code_number, part FROM pages WHERE duplicate_of IS NULL AND code_number <> '' {} "
               "GROUP BY code_number, part HAVING count(*) > 1")
        if codes is None:
            return {(c, p) for c, p in self._db.execute(sql.format(""))}
        found: set[tuple[str, int | None]] = set()
        for code in codes:
            found |= {(c, p) for c, p in self._db.execute(sql.format("AND code_number=?"), (code,))}
        return found

    def _apply(self, rows: Iterable[tuple], dup_codes: set[tuple[str, int | None]]) -> int:
        changed = 0
        for row_id, base_status, base_flags, duplicate_of, code, status, flags, part in rows:
            new_status, new_flags = effective_status_flags(
                base_status, _split(base_flags), _dec(duplicate_of), bool(code) and (code, part) in dup_codes
            )
            joined = _join(new_flags)
            if (new_status, joined) != (status, flags):
                self._db.execute(
                    "UPDATE pages SET status=?, flags=? WHERE id=?", (new_status, joined, row_id)
                )
                changed += 1
        return changed

    @_faults
    def refresh_flags(self) -> int:
        """Recompute the effective status and flags store-wide; return how many changed.

        Writes keep them up to date already; this is the whole-store check a batch runs
        at its end.  Only rows whose effective state can differ from what was read are
        looked at (a carried duplicate code number, a copy, or already differing), found
        by one scan inside SQLite, so memory stays small whatever the store's size.
        """
        with self._tx():
            return self._refresh_all()

    def _refresh_all(self) -> int:
        """`refresh_flags` inside the caller's transaction."""
        select = "SELECT id, base_status, base_flags, duplicate_of, code_number, status, flags, part FROM pages "
        dup_codes = self._duplicate_codes(None)
        rows = self._db.execute(
            select + "WHERE status <> base_status OR flags <> base_flags OR duplicate_of IS NOT NULL"
        ).fetchall()
        seen = {r[0] for r in rows}
        for code in {c for c, _ in dup_codes}:
            carried = self._db.execute(select + "WHERE code_number=?", (code,))
            rows += [r for r in carried if r[0] not in seen]
        return self._apply(rows, dup_codes)

    # -- meta: the scoring key, review settings ------------------------------------------
    @_faults
    def meta(self, name: str) -> str | None:
        """A value of the ``meta`` table (None when unset)."""
        got = self._db.execute("SELECT value FROM meta WHERE key=?", (name,)).fetchone()
        return None if got is None else str(got[0])

    @_faults
    def set_meta(self, name: str, value: str) -> None:
        """Set a value of the ``meta`` table (one transaction)."""
        with self._tx():
            self._db.execute("INSERT INTO meta VALUES (?, ?) "
                             "ON CONFLICT (key) DO UPDATE SET value=excluded.value",
                             (name, value))

    @_faults
    def record_scoring_key(self, key_json: str) -> None:
        """Remember the answer key (its JSON text) the store's pages are scored with.

        The review station and the export re-score examiner-corrected cards with it.
        """
        if self.meta(SCORING_KEY) != key_json:
            self.set_meta(SCORING_KEY, key_json)

    @_faults
    def scoring_key(self) -> AnswerKey | None:
        """The store's current key: its current key revision (`apply_key`), else the key
        of `record_scoring_key` (a store from before key revisions); None when neither."""
        from scoring import AnswerKey

        number = self._current_number()
        if number is not None:
            return self._revision_key(number)
        text = self.meta(SCORING_KEY)
        if text is None:
            return None
        return AnswerKey.from_dict(json.loads(text), source=f"{self.path} (meta {SCORING_KEY})")

    # -- review events (append-only; `omr.review.events`) --------------------------------
    @_faults
    def append_events(self, events: Sequence[NewEvent]) -> list[int]:
        """Record examiners' decisions in one transaction; return their ids.

        The only write the review station makes: it never changes a reading.  Times are
        UTC with milliseconds.
        """
        at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}Z"
        ids = []
        with self._tx():
            for e in events:
                cur = self._db.execute(
                    "INSERT INTO review_events (at, examiner, source, page, content_hash, field, "
                    "value_before, "
                    "value_after, entry_round, reason, note, undoes) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (at, e.examiner, e.source, e.page, e.content_hash, e.field, e.before, e.after,
                     e.entry_round, e.reason, e.note, e.undoes),
                )
                assert cur.lastrowid is not None
                ids.append(cur.lastrowid)
        return ids

    @_faults
    def review_events(self, source: str | None = None, page: int | None = None) -> list[ReviewEvent]:
        """Stored decisions in id order: all, or those of one source (and page), every scan of it."""
        where, params = "", ()
        if source is not None:
            where, params = "WHERE source=?", (source,)
            if page is not None:
                where, params = "WHERE source=? AND page=?", (source, page)
        return [ReviewEvent(*r) for r in self._db.execute(
            "SELECT id, at, source, page, content_hash, examiner, field, value_before, value_after, "
            f"entry_round, reason, note, undoes FROM review_events {where} ORDER BY id", params)]

    @_faults
    def last_event_id(self) -> int:
        """The highest event id (0 when none): cheap change detection for a viewer."""
        return int(self._db.execute("SELECT coalesce(max(id), 0) FROM review_events").fetchone()[0])

    @_faults
    def machine_cards(self, *, where: str = "", params: Sequence[object] = ()) -> list[MachineCard]:
        """Stored pages as `MachineCard`s (effective status and flags), in (source, page) order.

        ``where`` is an SQL condition on the ``pages`` columns, ``params`` its values.
        """
        return [card for _, card in self.numbered_cards(where=where, params=params)]

    @_faults
    def numbered_cards(
        self, *, where: str = "", params: Sequence[object] = ()
    ) -> list[tuple[int, MachineCard]]:
        """As `machine_cards`, each with its row id (a reading's id: a re-scan gets a new one)."""
        sql = ("SELECT id, source, page, coalesce(content_hash, ''), status, code_number, version, "
               "responses, "
               f"flags FROM pages {('WHERE ' + where) if where else ''} ORDER BY source, page")
        return [(i, MachineCard(s, p, h, st, c, v, r, _split(f))) for i, s, p, h, st, c, v, r, f
                in self._db.execute(sql, tuple(params))]

    @_faults
    def fingerprint(self) -> tuple[int, int, int]:
        """(pages, highest page id, highest event id): changes whenever a page or an event is written."""
        pages, top = self._db.execute("SELECT count(*), coalesce(max(id), 0) FROM pages").fetchone()
        return int(pages), int(top), self.last_event_id()

    @_faults
    def code_reads(self, source: str, page: int) -> tuple[str, str]:
        """(barcode, grid digits) as the reader found them on a stored page ("" when none)."""
        got = self._db.execute("SELECT coalesce(barcode, ''), coalesce(grid, '') FROM pages "
                               "WHERE source=? AND page=?", (source, page)).fetchone()
        return ("", "") if got is None else (str(got[0]), str(got[1]))

    @_faults
    def cards_with_code(self, code: str, part: int | None = None) -> int:
        """How many stored cards (not copies) carry this code number as read, of this part
        (None: cards of no recorded part, which is every card of a layout without parts)."""
        return int(self._db.execute("SELECT count(*) FROM pages WHERE code_number=? AND part IS ? "
                                    "AND duplicate_of IS NULL", (code, part)).fetchone()[0])

    @_faults
    def part_of(self, source: str, page: int) -> int | None:
        """The stored part of a page of a card of several parts (None otherwise or unknown)."""
        got = self._db.execute("SELECT part FROM pages WHERE source=? AND page=?", (source, page)).fetchone()
        return None if got is None else got[0]

    @_faults
    def base_status_flags(self, source: str, page: int) -> tuple[str, tuple[str, ...]]:
        """A stored page's status and flags as read and scored (before the store-wide checks)."""
        got = self._db.execute("SELECT base_status, base_flags FROM pages WHERE source=? AND page=?",
                               (source, page)).fetchone()
        if got is None:
            raise StoreError(f"{self.path}: {source} page {page} is not stored")
        return str(got[0]), _split(got[1])

    @_faults
    def page_geometry(self, source: str, page: int) -> PageGeometry | None:
        """Where a stored page's boxes are in its image (None for error rows and unknown pages)."""
        got = self._db.execute(
            "SELECT coalesce(path, source), coalesce(content_hash, ''), homography, box_shifts, rotation_deg "
            "FROM pages WHERE source=? AND page=?", (source, page)).fetchone()
        if got is None or got[2] is None:
            return None
        shifts = None
        if got[3] is not None:
            shifts = np.frombuffer(got[3], np.float32).reshape(-1, 2).astype(np.float64)
        return PageGeometry(path=got[0], content_hash=got[1],
                            homography=np.array(json.loads(got[2]), dtype=np.float64).reshape(3, 3),
                            box_shifts_mm=shifts, rotation_deg=int(got[4] or 0))

    # -- reading ----------------------------------------------------------------------
    @_faults
    def iter_rows(
        self, *, run_id: int | None = None, base: bool = False, chunk: int = 2000
    ) -> Iterator[StoredRow]:
        """Stored pages in (source, page) order, streamed; only ``run_id``'s when given.

        Each row carries the extra column ``message`` (`MESSAGE_COLUMN`, "" unless the
        page is an error).  ``base=True`` gives the status and flags as read and scored,
        before the store-wide checks (``duplicate_code``, ``duplicate_page``): what
        re-scoring starts from.

        A run's pages are those its inputs held, read by it or found stored, even when a
        later run saw them too; a page re-scanned into the same file since comes as that
        run stored it (from ``superseded``).
        """
        if run_id is None:
            yield from self._select_rows("", (), base=base, chunk=chunk)
            return
        where, params = self._run_filter(run_id)
        yield from self._select_rows(f"WHERE {where}", params, base=base, chunk=chunk,
                                     superseded=f"WHERE {where}")

    def _run_filter(self, run_id: int) -> tuple[str, tuple]:
        """The WHERE clause of run ``run_id``'s pages (`run_pages`; runs made before it was
        kept: the pages it was the last to see)."""
        if self._db.execute("SELECT 1 FROM run_pages WHERE run_id=? LIMIT 1", (run_id,)).fetchone():
            return "id IN (SELECT page_id FROM run_pages WHERE run_id=?)", (run_id,)
        return "seen_run=?", (run_id,)

    def _select_rows(self, where: str, params: tuple, *, base: bool, chunk: int = 2000,
                     superseded: str | None = None) -> Iterator[StoredRow]:
        """Rows of ``pages`` matching ``where``, and with ``superseded`` (a WHERE clause of
        the same ``params``) those of ``superseded`` too, in (source, page) order."""
        columns = _ROW_COLUMNS.format(status="base_status" if base else "status",
                                      flags="base_flags" if base else "flags")
        sql = f"SELECT {columns} FROM pages {where}"
        if superseded is not None:
            sql += f" UNION ALL SELECT {columns} FROM superseded {superseded}"
            params = params * 2
        cur = self._db.execute(f"{sql} ORDER BY source, page", params)
        parts = self.layout_parts > 1
        while batch := cur.fetchmany(chunk):
            for r in batch:
                yield _stored_row(r, parts)

    @_faults
    def counts(self, run_id: int | None = None) -> StatusCounts:
        """Pages per status, in the whole store or among ``run_id``'s inputs."""
        if run_id is None:
            sql, params = "SELECT status, count(*) FROM pages GROUP BY status", ()
        else:
            where, params = self._run_filter(run_id)
            sql = (f"SELECT status, count(*) FROM (SELECT status FROM pages WHERE {where} UNION ALL "
                   f"SELECT status FROM superseded WHERE {where}) GROUP BY status")
            params = params * 2
        got = dict(self._db.execute(sql, params))
        return StatusCounts(ok=got.get("ok", 0), review=got.get("review", 0), error=got.get("error", 0))

    @_faults
    def fill_matrix(self, source: str, page: int) -> FillMatrix | None:
        """The stored box features and states of one page (None on error rows / unknown pages)."""
        got = self._db.execute(
            "SELECT fill, fill_shape, box_states FROM pages WHERE source=? AND page=?", (_enc(source), page)
        ).fetchone()
        if got is None or got[0] is None:
            return None
        shape = tuple(int(n) for n in got[1].split("x"))
        features = np.frombuffer(got[0], dtype=np.float16).reshape(shape).astype(np.float32)
        return FillMatrix(features=features, states=np.frombuffer(got[2], dtype=np.int8).copy())

    @_faults
    def thresholds_json(self, source: str, page: int) -> dict | None:
        """The thresholds a stored page was read with, as a dict (None on error rows)."""
        got = self._db.execute(
            "SELECT thresholds FROM pages WHERE source=? AND page=?", (_enc(source), page)
        ).fetchone()
        return None if got is None or got[0] is None else json.loads(got[0])

    @_faults
    def update_scores(self, rows: Iterable[ResultRow], *, chunk: int = 5000) -> int:
        """Write re-scored rows back (matched by source and page); return rows updated.

        ``rows`` are rows of ``iter_rows(base=True)`` after scoring: their scores,
        status and flags become the stored ones as read and scored, then the store-wide
        checks are applied again (`refresh_flags`).  Commits every ``chunk`` rows.  The
        rows keep the key revision they had: re-scoring with a key goes through
        `apply_key`, which does it all in one transaction.
        """
        updated = 0
        pending: list[ResultRow] = []
        for r in rows:
            pending.append(r)
            if len(pending) >= chunk:
                with self._tx():
                    updated += self._update_rows(pending, None)
                pending.clear()
        if pending:
            with self._tx():
                updated += self._update_rows(pending, None)
        self.refresh_flags()
        return updated

    def _update_rows(self, rows: Iterable[ResultRow], key_revision: int | None) -> int:
        """Write re-scored rows inside the caller's transaction (``key_revision`` None keeps it)."""
        params = []
        for r in rows:
            base_flags = [f for f in r.flags if not _is_store_flag(f)]
            params.append((r.status, _join(base_flags), r.correct, r.max_points,
                           None if r.percent is None else str(r.percent),
                           None if r.passed is None else int(r.passed), key_revision, _enc(r.source), r.page))
        cur = self._db.executemany(
            "UPDATE pages SET base_status=?, base_flags=?, correct=?, max_points=?, percent=?, passed=?, "
            "key_revision=COALESCE(?, key_revision) WHERE source=? AND page=?",
            params,
        )
        return cur.rowcount

    @_faults
    def rescore(self, key: AnswerKey, *, by: str = "rescore", reason: str = "", source: str = "") -> RescoreReport:
        """Re-score every stored page with ``key`` from its stored responses (no images).

        `apply_key` with ``rescore_all=True``: ``key`` becomes the current revision
        (a new one unless it is the current key already).  Returns the
        `scoring.rescore_rows` report (its status counts are before the store-wide
        checks; `counts` gives them after).  Pages of cards of several parts keep empty
        scores (`scoring.candidates.score_part_pages`): their candidates are scored when
        joined (`omr export --candidates`).
        """
        report = self.apply_key(key, by=by, reason=reason, source=source, rescore_all=True).report
        assert report is not None
        return report

    # -- key revisions ----------------------------------------------------------------
    def _scorer(self) -> Callable[[Sequence[ResultRow], AnswerKey], list[ResultRow]]:
        """How this store's pages are scored: `scoring.score_rows`, or for cards of several
        parts `scoring.candidates.score_part_pages` (pages keep empty scores)."""
        from scoring import score_rows
        from scoring.candidates import score_part_pages

        return score_part_pages if self.layout_parts > 1 else score_rows
    def _current_number(self) -> int | None:
        return self._db.execute("SELECT max(id) FROM key_revisions").fetchone()[0]

    def _revision_key(self, number: int) -> AnswerKey:
        """The key of revision ``number`` (parsed once per store object)."""
        if number not in self._key_cache:
            revision = self.key_revision(number)
            if revision is None:
                raise StoreError(f"{self.path}: key revision {number} is not stored")
            self._key_cache[number] = revision.key
        return self._key_cache[number]

    def _revision_of(self, row: tuple) -> KeyRevision:
        from scoring import AnswerKey

        number, key_json, created_at, created_by, reason, source = row
        try:
            key = AnswerKey.from_dict(json.loads(key_json), source=f"{self.path} key revision {number}")
        except (ValueError, OmrError) as err:
            raise StoreError(f"{self.path}: key revision {number} is unreadable ({err}); the store is "
                             "damaged: restore it from a backup") from err
        return KeyRevision(number=number, key=key, created_at=created_at, created_by=created_by,
                           reason=reason, source=source)

    @_faults
    def key_revision(self, number: int) -> KeyRevision | None:
        """Revision ``number``, or None when the store has no such revision."""
        got = self._db.execute("SELECT id, key_json, created_at, created_by, reason, source "
                               "FROM key_revisions WHERE id=?", (number,)).fetchone()
        return None if got is None else self._revision_of(got)

    @_faults
    def key_revisions(self) -> list[KeyRevision]:
        """Every revision, oldest first (the last is the current key)."""
        return [self._revision_of(r) for r in self._db.execute(
            "SELECT id, key_json, created_at, created_by, reason, source FROM key_revisions ORDER BY id")]

    @_faults
    def current_revision(self) -> KeyRevision | None:
        """The key the store's pages are scored with (None before any key was applied)."""
        number = self._current_number()
        return None if number is None else self.key_revision(number)

    @_faults
    def pages_per_revision(self) -> dict[int | None, int]:
        """How many page rows carry each key revision (None: scored before revisions existed)."""
        return dict(self._db.execute("SELECT key_revision, count(*) FROM pages GROUP BY key_revision"))

    @_faults
    def apply_key(
        self,
        key: AnswerKey,
        *,
        by: str,
        reason: str,
        source: str = "",
        rescore_all: bool = False,
    ) -> KeyApplied:
        """Make ``key`` the store's current key and score every page with it, atomically.

        A key equal to the current revision's (`scoring.key_to_dict`) adds nothing;
        another key is stored as the next revision (``by``, ``reason``, ``source`` and
        the time recorded), even when it equals an older one (``same_as`` says which).
        Every page not scored with the resulting revision (all of them after a new
        one; every page with ``rescore_all``) is re-scored from its stored responses,
        in the same transaction as the revision: another process sees the old key on
        every page or the new one on every page, never a mix.

        Raises
        ------
        StoreError
            The store cannot be written (busy for longer than its timeout, read-only).
        """
        from scoring import key_to_dict, rescore_rows

        text = json.dumps(key_to_dict(key), sort_keys=True, ensure_ascii=False)
        with self._tx():
            number = self._current_number()
            previous = None if number is None else self.key_revision(number)
            stored_text = None if number is None else self._db.execute(
                "SELECT key_json FROM key_revisions WHERE id=?", (number,)).fetchone()[0]
            same_as = None
            if stored_text == text:
                revision, added = previous, False
            else:
                older = self._db.execute("SELECT min(id) FROM key_revisions WHERE key_json=?", (text,)).fetchone()
                same_as = older[0]
                cur = self._db.execute(
                    "INSERT INTO key_revisions (key_json, created_at, created_by, reason, source) "
                    "VALUES (?, ?, ?, ?, ?)", (text, _now(), by, reason, source))
                revision, added = self.key_revision(int(cur.lastrowid or 0)), True
            assert revision is not None
            self._db.execute("INSERT INTO meta VALUES (?, ?) "
                             "ON CONFLICT (key) DO UPDATE SET value=excluded.value",
                             (SCORING_KEY, text))
            where, params = (("", ()) if rescore_all or added
                             else ("WHERE key_revision IS NOT ?", (revision.number,)))
            stale = [r.row for r in self._select_rows(where, params, base=True)]
            report = None
            if stale or rescore_all:
                report = rescore_rows(stale, revision.key, score=self._scorer())
                self._update_rows(report.rows, revision.number)
                self._refresh_all()
        self._key_cache[revision.number] = revision.key
        return KeyApplied(revision=revision, previous=previous, added=added, same_as=same_as, report=report)

    @_faults
    def one_key(self) -> AnswerKey | None:
        """The current key revision's key, after checking every page is scored with it.

        None for a store without key revisions (written by an older omr and never
        scored since): its pages are exported as they are.

        Raises
        ------
        StoreError
            Pages carry another key revision than the current one (an older omr wrote
            to the store after a revision was added): one export would mix keys.
        """
        number = self._current_number()
        if number is None:
            return None
        stale = self._db.execute("SELECT count(*), min(source) FROM pages WHERE key_revision IS NOT ?",
                                 (number,)).fetchone()
        if stale[0]:
            raise StoreError(
                f"{self.path}: {stale[0]} pages (e.g. {stale[1]}) were scored with another key than the "
                f"current revision {number}; one export would mix keys.  Re-score them: omr key add --db "
                f"{self.path} KEY.json (the key of revision {number}) --by NAME --reason TEXT"
            )
        return self._revision_key(number)


def _split_script(script: str) -> list[str]:
    """The statements of a migration script (a trigger's body keeps its inner ``;``)."""
    statements, current = [], ""
    for line in script.strip().splitlines():
        current += line + "\n"
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return statements


def _stored_row(r: tuple, parts: bool = False) -> StoredRow:
    (source, page, status, code, version, responses, correct, max_points, percent, passed, flags,
     error_type, message, content_hash, duplicate_of, part) = r  # fmt: skip
    message = _dec(message) or ""
    extra: tuple[tuple[str, str], ...] = ((MESSAGE_COLUMN, message),)
    if parts:  # a store of cards of several parts exports each card's part
        extra = ((PART_COLUMN, "" if part is None else str(part)), *extra)
    row = ResultRow(
        source=_dec(source) or "",
        page=page,
        status=status,
        code_number=code,
        version=version,
        responses=responses,
        flags=_split(flags),
        correct=correct,
        max_points=max_points,
        percent=None if percent is None else Decimal(percent),
        passed=None if passed is None else bool(passed),
        extra=extra,
    )
    return StoredRow(row=row, message=message, error_type=error_type, content_hash=content_hash or "",
                     duplicate_of=_dec(duplicate_of) or "", part=part)


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on an exception); ``before_commit``
    runs last inside it."""

    def __init__(self, db: sqlite3.Connection, before_commit: Callable[[], None] | None = None) -> None:
        self._db = db
        self._before_commit = before_commit

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        try:
            if exc_type is None:
                if self._before_commit is not None:
                    self._before_commit()
                self._db.execute("COMMIT")
                return
        except sqlite3.Error:  # a full disk at the commit: undo, and tell why
            self._rollback()
            raise
        self._rollback()

    def _rollback(self) -> None:
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.Error:  # SQLite rolled back already (a full disk): the first error tells why
            pass
