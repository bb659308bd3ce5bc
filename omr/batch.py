"""Batch runs: read pages in parallel, stream the results to one writer, resume after a kill.

``run_batch`` is the loop every ``omr scan`` runs, whatever executes the pages::

    PageRefs (lazy) ─► plan against the store ─┬─ skip   (stored before, same content)
                                               ├─ alias  (same content stored under another path)
                                               └─ read ─► backend ─► PageOutcome ─► score ─► store
                                                          (at most `window` pages in flight)

Backends (same loop, same writer):

* ``workers=1``: in this process (simplest to debug); given the `LastFile` the pages
  were described with, it decodes each file from the bytes just hashed;
* ``workers=N``: a spawn-safe process pool on local cores; workers cache the layout's
  sampling grid; each is replaced after `MAX_TASKS_PER_CHILD` pages (bounded memory
  even with leaky C libraries); a worker that dies (a crash inside a decoder) costs
  only the page that killed it: the pool is restarted, the pages then in flight are
  retried one by one, and the one that crashes again becomes an ``error`` row
  flagged ``worker_crashed`` (read once more by the next run over the same store);
  each worker dies with the main process, however that ends (``kill -9`` too);
* ``scheduler="tcp://host:port"``: a Dask distributed cluster; workers open the
  pages by path (the files must be visible to them at the same absolute path) and
  results stream back here as they complete.

Durability: the store commits pages from this process only, a few at a time
(`WRITE_GROUP_PAGES` or `WRITE_GROUP_S`, each page whole within one transaction: one
commit and one scoring call per page cost ~0.3 ms of a page's ~37 ms), so a run
killed at any moment (even ``kill -9``) keeps every page it committed; running the
same batch again skips them (content hash + page) and reads the rest, the last
uncommitted group included.  A page is handled at most once per run, and every input
page ends with exactly one row.  Memory is bounded by the window and the write
group, whatever the batch size: page references are enumerated lazily and results
are written as they arrive.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from calibration import MarkThresholds
from omr.errors import EnvironmentFault, OmrError
from omr.layout import CardLayout
from omr.pages import LastFile, PageRef, release_open_files
from omr.pipeline import INTERNAL_ERROR, PageOutcome, PageTimings, process_page
from omr.processes import die_with_parent
from omr.store import ResultStore
from scoring.results import ResultRow

__all__ = [
    "MAX_TASKS_PER_CHILD",
    "WORKER_CRASHED",
    "PageEvent",
    "RunSummary",
    "ScoreFn",
    "run_batch",
]

#: pages a pool worker reads before it is replaced by a fresh process
MAX_TASKS_PER_CHILD = 1000
#: flag of a page whose worker process died while reading it (twice)
WORKER_CRASHED = "worker_crashed"
_SEEN_FLUSH_PAGES = 500
#: pages read are committed in groups of at most this many pages ...
WRITE_GROUP_PAGES = 16
#: ... or of what arrived within this many seconds (the progress display lags by at most that)
WRITE_GROUP_S = 0.5

#: scores unscored rows with the answer key: ``scoring.score_rows(rows, key)`` bound to a key
ScoreFn = Callable[[Sequence[ResultRow]], list[ResultRow]]


@dataclass(frozen=True, slots=True)
class PageEvent:
    """One input page handled (what a progress display shows).

    ref : the page
    action : ``read`` (read in this run), ``alias`` (copied from the same content stored
        under another path) or ``skip`` (stored by an earlier run)
    status : its stored status (``ok`` / ``review`` / ``error``)
    """

    ref: PageRef
    action: str
    status: str


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What a run did.

    run_id : the run's id in the store
    pages : input pages, each counted once (= rows of this run in the store)
    ok, review, error : those pages per status, after the store-wide checks
    read, aliased, skipped : how the pages were handled in this run
    elapsed_s : wall-clock seconds
    """

    run_id: int
    pages: int
    ok: int
    review: int
    error: int
    read: int
    aliased: int
    skipped: int
    elapsed_s: float


# -- backends ---------------------------------------------------------------------------


class _Inline:
    """Reads each page in this process when it is submitted, single-threaded like a pool
    worker (one OpenCV and one BLAS thread; measured on one core: 13.7 ms a card against
    14.5 with OpenCV's two threads taking turns on it)."""

    def __init__(self, layout: CardLayout, thresholds: MarkThresholds | None, kept: LastFile | None) -> None:
        import cv2
        from threadpoolctl import threadpool_limits

        self._args = (layout, thresholds)
        self._kept = kept
        # restored by close(): the caller's process keeps its own settings
        self._cv2_threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        self._blas_limit = threadpool_limits(limits=1, user_api="blas")

    def submit(self, ref: PageRef) -> cf.Future:
        fut: cf.Future = cf.Future()
        fut.set_result(process_page(ref, *self._args, kept=self._kept))
        return fut

    def wait_first(self, pending: Iterable[cf.Future]) -> set[cf.Future]:
        return set(pending)

    def result(self, fut: cf.Future, ref: PageRef) -> PageOutcome:
        return fut.result()

    def close(self) -> None:
        import cv2

        cv2.setNumThreads(self._cv2_threads)
        self._blas_limit.restore_original_limits()
        release_open_files()


def _init_pool_worker(parent_pid: int | None = None) -> None:
    """One OpenCV thread and one BLAS thread per reading process: the batch already runs
    a process per core.  The reader's matrix products are small, and OpenBLAS's threads
    spin on the other cores while they wait for the next one (measured: a card's CPU
    time doubled, and 2 workers read slower than 1).

    A local pool's worker (``parent_pid`` given) dies with the main process, however
    that ends (`omr.processes.die_with_parent`: without it, a ``kill -9`` of the main
    process left the workers and the resource tracker running for ever), and leaves
    Ctrl-C and a terminal's hang-up to the main process, which shuts the pool down.
    """
    if parent_pid is not None:
        die_with_parent(parent_pid)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    import cv2
    from threadpoolctl import threadpool_limits

    cv2.setNumThreads(1)
    threadpool_limits(limits=1)


class _Pool:
    """A spawn-context process pool; restarts itself when a worker dies."""

    def __init__(self, layout: CardLayout, thresholds: MarkThresholds | None, workers: int) -> None:
        self._args = (layout, thresholds)
        self._workers = workers
        self._pool = self._start()

    def _start(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(
            max_workers=self._workers,
            mp_context=multiprocessing.get_context("spawn"),
            max_tasks_per_child=MAX_TASKS_PER_CHILD,
            initializer=_init_pool_worker,
            initargs=(os.getpid(),),
        )

    def submit(self, ref: PageRef) -> cf.Future:
        try:
            return self._pool.submit(process_page, ref, *self._args)
        except cf.process.BrokenProcessPool as err:
            # a worker died before its broken future was collected: hand back a failed
            # future, so this page takes the same road as the others in flight (restart,
            # then each read alone) instead of the exception ending the batch
            failed: cf.Future = cf.Future()
            failed.set_exception(err)
            return failed

    def wait_first(self, pending: Iterable[cf.Future]) -> set[cf.Future]:
        return cf.wait(pending, return_when=cf.FIRST_COMPLETED).done

    def result(self, fut: cf.Future, ref: PageRef) -> PageOutcome:
        return fut.result()

    def restart(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._start()

    def isolate(self, ref: PageRef) -> PageOutcome:
        """Read one page alone in the pool; a second crash makes it an error row."""
        try:
            return self._pool.submit(process_page, ref, *self._args).result()
        except cf.process.BrokenProcessPool:
            self.restart()
            return _failed_outcome(
                ref, WORKER_CRASHED, "BrokenProcessPool",
                f"the worker process died while reading {ref.source} page {ref.page} alone, after a "
                "worker died with it among the pages in flight: the file may crash a decoder, or the "
                "process was killed (out of memory?); running the batch again retries it once",
            )  # fmt: skip

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class _Dask:
    """Pages submitted to a Dask distributed scheduler."""

    def __init__(self, layout: CardLayout, thresholds: MarkThresholds | None, address: str) -> None:
        from distributed import Client

        try:
            self._client = Client(address, set_as_default=False, timeout="20s")
        except (OSError, TimeoutError) as err:
            raise EnvironmentFault(
                f"cannot reach the Dask scheduler at {address}: {err}; start it with "
                "'dask scheduler' and check --scheduler"
            ) from err
        self._client.run(_init_pool_worker)
        self._layout = self._client.scatter(layout, broadcast=True, hash=False)
        self._thresholds = thresholds

    def slots(self) -> int:
        return max(1, sum(self._client.nthreads().values()))

    def submit(self, ref: PageRef) -> Any:
        return self._client.submit(process_page, ref, self._layout, self._thresholds, pure=False)

    def wait_first(self, pending: Iterable[Any]) -> set[Any]:
        from distributed import wait

        with self._client.as_current():  # distributed.wait looks for the current client
            return set(wait(list(pending), return_when="FIRST_COMPLETED").done)

    def result(self, fut: Any, ref: PageRef) -> PageOutcome:
        from distributed import KilledWorker

        try:
            return fut.result()
        except KilledWorker as err:
            return _failed_outcome(ref, WORKER_CRASHED, type(err).__name__,
                                   f"Dask workers died reading {ref.source} page {ref.page}: {err}")
        finally:
            fut.release()

    def close(self) -> None:
        self._client.close()


def _failed_outcome(ref: PageRef, flag: str, error_type: str, message: str) -> PageOutcome:
    return PageOutcome(
        ref=ref,
        row=ResultRow(source=ref.source, page=ref.page, status="error", flags=(flag,)),
        reading=None,
        timings=PageTimings(0.0, 0.0, 0.0),
        error_type=error_type,
        message=message,
    )


# -- the loop ---------------------------------------------------------------------------


def _score(score: ScoreFn, rows: Sequence[ResultRow]) -> list[ResultRow]:
    """Score rows in one call; a row that cannot be scored goes to review instead of
    stopping the batch (after a failure the rows are scored one by one to find it)."""
    try:
        return score(rows)
    except OmrError as err:
        if len(rows) > 1:
            return [scored for row in rows for scored in _score(score, [row])]
        row = rows[0]
        status = row.status if row.status == "error" else "review"
        return [replace(row, status=status, flags=(*row.flags, err.code))]


def run_batch(
    refs: Iterable[PageRef],
    store: ResultStore,
    layout: CardLayout,
    *,
    score: ScoreFn,
    thresholds: MarkThresholds | None = None,
    workers: int = 1,
    scheduler: str | None = None,
    window: int | None = None,
    on_page: Callable[[PageEvent], None] | None = None,
    command: str = "",
    kept: LastFile | None = None,
    key_revision: int | None = None,
) -> RunSummary:
    """Read, score and store every page of ``refs``; resume what an earlier run left.

    Parameters
    ----------
    refs : iterable of PageRef
        Usually ``omr.pages.iter_pages(inputs)``; consumed lazily.
    store : ResultStore
        Where every page ends up, committed a few pages at a time.
    layout : CardLayout
    score : callable
        ``rows -> scored rows`` (``functools.partial(scoring.score_rows, key=key)``).
    thresholds : MarkThresholds, optional
        Batch thresholds for the reader; by default learned per card.
    workers : int
        1 reads in this process; more uses a local process pool.  Ignored with
        ``scheduler``.
    scheduler : str, optional
        Address of a Dask scheduler (``tcp://host:port``) to run the pages on.
    window : int, optional
        Most pages in flight at once (bounds memory); default 1 in-process, else twice
        the worker slots + 2.
    on_page : callable, optional
        Called with a `PageEvent` after each page is stored or skipped.
    command : str
        Recorded with the run.
    kept : LastFile, optional
        The `LastFile` given to ``iter_pages(inputs, keep=...)``: in this process each
        page is decoded from the bytes its file was hashed from (not read twice).
        Ignored by a pool or a cluster, whose workers read the files themselves.
    key_revision : int, optional
        The store's key revision ``score`` scores with (`ResultStore.apply_key`).  A
        write group finding another current revision in the store (one added while
        this run reads) is scored again with it as it is written, so the store never
        mixes keys (`ResultStore.write_outcomes`).

    Returns
    -------
    RunSummary

    Raises
    ------
    StoreError
        The store cannot be written.
    EnvironmentFault
        The Dask scheduler cannot be reached.
    """
    if workers < 1:
        raise ValueError(f"workers: need at least 1, got {workers}")
    t0 = time.perf_counter()
    backend: _Inline | _Pool | _Dask
    if scheduler:
        backend = _Dask(layout, thresholds, scheduler)
        slots = backend.slots()
    elif workers > 1:
        backend, slots = _Pool(layout, thresholds, workers), workers
    else:
        backend, slots = _Inline(layout, thresholds, kept), 1
    window = window or (1 if isinstance(backend, _Inline) else 2 * slots + 2)
    run_id = store.begin_run(command)
    counter = {"read": 0, "alias": 0, "skip": 0}
    pending: dict[Any, PageRef] = {}
    in_flight: set[tuple[str, int]] = set()
    deferred: list[PageRef] = []
    seen: list[PageRef] = []
    unwritten: list[PageOutcome] = []  # read, not yet committed (`write_unwritten`)
    group_started = 0.0  # when the first of them arrived

    def keys(ref: PageRef) -> list[tuple[str, int]]:
        by_content = [("h:" + ref.content_hash, ref.page)] if ref.content_hash else []
        return [("p:" + ref.path, ref.page), *by_content]

    def emit(ref: PageRef, action: str, status: str) -> None:
        counter[action] += 1
        if on_page is not None:
            on_page(PageEvent(ref=ref, action=action, status=status))

    def flush_seen() -> None:
        if seen:
            store.mark_seen(seen, run_id)
            for ref in seen:
                emit(ref, "skip", "")
            seen.clear()

    def store_outcome(outcome: PageOutcome) -> None:
        nonlocal group_started
        if not unwritten:
            group_started = time.perf_counter()
        unwritten.append(outcome)
        if len(unwritten) >= WRITE_GROUP_PAGES or time.perf_counter() - group_started >= WRITE_GROUP_S:
            write_unwritten()

    def write_unwritten() -> None:
        """Score and commit the pages read so far, in one transaction; only then are they
        out of flight (a page with the same content waits until they are stored)."""
        if not unwritten:
            return
        rows = _score(score, [o.row for o in unwritten])
        statuses = store.write_outcomes(list(zip(unwritten, rows, strict=True)), run_id,
                                        key_revision=key_revision)
        for outcome, status in zip(unwritten, statuses, strict=True):
            in_flight.difference_update(keys(outcome.ref))
            emit(outcome.ref, "read", status)
        unwritten.clear()

    def drain(until: int) -> None:
        while len(pending) > until:
            done = backend.wait_first(list(pending))
            crashed: list[PageRef] = []
            for fut in done:
                ref = pending.pop(fut)
                try:
                    outcome = backend.result(fut, ref)
                except cf.process.BrokenProcessPool:
                    crashed.append(ref)
                    continue
                except Exception as err:  # a transport failure costs one page, not the batch
                    message = f"{type(err).__name__} running {ref.source} page {ref.page}: {err}"
                    outcome = _failed_outcome(ref, INTERNAL_ERROR, type(err).__name__, message)
                store_outcome(outcome)
            if crashed and isinstance(backend, _Pool):
                crashed += list(pending.values())
                pending.clear()
                backend.restart()
                for ref in crashed:
                    store_outcome(backend.isolate(ref))

    def handle(ref: PageRef, *, allow_defer: bool) -> None:
        plan = store.plan(ref, run_id=run_id)
        if plan.action == "skip":
            seen.append(ref)
            if len(seen) >= _SEEN_FLUSH_PAGES:
                flush_seen()
            return
        if allow_defer and any(k in in_flight for k in keys(ref)):
            deferred.append(ref)  # same file or same content in flight: decide once it is stored
            return
        if plan.action == "alias":
            emit(ref, "alias", store.write_alias(ref, plan.original, run_id))
            return
        fut = backend.submit(ref)
        pending[fut] = ref
        in_flight.update(keys(ref))
        drain(window - 1)

    try:
        for ref in refs:
            handle(ref, allow_defer=True)
        drain(0)
        write_unwritten()  # before the deferred pages: their originals must be stored
        for ref in deferred:
            handle(ref, allow_defer=False)
            drain(0)
            write_unwritten()
        flush_seen()
        store.refresh_flags()
    finally:
        backend.close()
    elapsed = time.perf_counter() - t0
    counts = store.finish_run(run_id, read=counter["read"], skipped=counter["skip"], elapsed_s=elapsed)
    return RunSummary(
        run_id=run_id,
        pages=counts.pages,
        ok=counts.ok,
        review=counts.review,
        error=counts.error,
        read=counter["read"],
        aliased=counter["alias"],
        skipped=counter["skip"],
        elapsed_s=elapsed,
    )
