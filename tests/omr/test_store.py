import sqlite3
import tempfile
from collections import Counter
from dataclasses import replace
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calibration import MarkThresholds
from omr.errors import StoreError
from omr.pages import PageRef
from omr.pipeline import PageOutcome, PageTimings
from omr.reader import CardReading
from omr.store import SCHEMA_VERSION, ResultStore, effective_status_flags, open_store
from scoring.results import ResultRow


def ref(source: str, content: str = "h1", page: int = 1) -> PageRef:
    return PageRef(source=source, page=page, path="/abs/" + source, content_hash=content, kind="jpeg")


def outcome(r: PageRef, code: str = "123456782", status: str = "ok", flags=(), seed: int = 0) -> PageOutcome:
    timings = PageTimings(0.01, 0.02, 0.03)
    if status == "error":
        row = ResultRow(source=r.source, page=r.page, status="error", flags=flags or ("markers_not_found",))
        return PageOutcome(r, row, None, timings, "MarkerNotFoundError", "no markers in " + r.source)
    rng = np.random.default_rng(seed)
    reading = CardReading(
        responses="AB-*?", code_number=code, version="A", flags=tuple(flags), needs_review=status == "review",
        box_features=rng.random((7, 3), dtype=np.float32), box_states=rng.integers(0, 3, 7).astype(np.int8),
        homography=np.eye(3), rotation_deg=180, thresholds=MarkThresholds(source="card"), barcode=code,
        grid=code, registration_residual_mm=0.05,
    )
    row = ResultRow(source=r.source, page=r.page, status=status, code_number=code, version="A",
                    responses="AB-*?", flags=tuple(flags))
    return PageOutcome(r, row, reading, timings)


def scored(row: ResultRow, correct: int = 2) -> ResultRow:
    if row.status == "error":
        return row
    return replace(row, correct=correct, max_points=5, percent=Decimal("40.00"), passed=False)


def put(store: ResultStore, r: PageRef, run: int | None = None, **kw) -> str:
    o = outcome(r, **kw)
    return store.write_outcome(o, scored(o.row), run)


def rows(store: ResultStore, run_id=None) -> dict[str, ResultRow]:
    return {f"{s.row.source}#{s.row.page}": s.row for s in store.iter_rows(run_id=run_id)}


@pytest.fixture
def store(tmp_path):
    with open_store(tmp_path / "r.sqlite", layout_name="lek-ldek-v1") as s:
        yield s


def test_new_store_is_wal_with_a_versioned_schema(tmp_path, store):
    db = sqlite3.connect(tmp_path / "r.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")} >= {
        "pages", "superseded", "runs", "meta"}


def test_a_page_round_trips_with_its_measurements(store):
    r = ref("a.jpg")
    o = outcome(r, seed=4)
    assert store.write_outcome(o, scored(o.row), None) == "ok"
    (got,) = store.iter_rows()
    assert got.row == replace(scored(o.row), extra=(("message", ""),))
    assert got.content_hash == "h1" and got.message == ""
    fill = store.fill_matrix("a.jpg", 1)
    np.testing.assert_allclose(fill.features, o.reading.box_features, atol=1e-3)
    assert fill.features.dtype == np.float32
    np.testing.assert_array_equal(fill.states, o.reading.box_states)
    assert store.thresholds_json("a.jpg", 1)["source"] == "card"
    assert store.fill_matrix("nope.jpg", 1) is None


def test_error_rows_keep_the_message_and_no_scores(store):
    put(store, ref("bad.jpg"), status="error")
    (got,) = store.iter_rows()
    assert got.row.status == "error" and got.row.flags == ("markers_not_found",)
    assert got.row.correct is None and got.row.percent is None and got.row.passed is None
    assert got.message == "no markers in bad.jpg" and got.error_type == "MarkerNotFoundError"
    assert got.row.extra == (("message", "no markers in bad.jpg"),)
    assert store.fill_matrix("bad.jpg", 1) is None


def test_plan_skips_stored_pages_and_aliases_copies(store):
    put(store, ref("a.jpg", "h1"))
    assert store.plan(ref("a.jpg", "h1")).action == "skip"
    assert store.plan(ref("a.jpg", "h1", page=2)).action == "read"
    assert store.plan(ref("b.jpg", "h2")).action == "read"
    plan = store.plan(ref("copy.jpg", "h1"))
    assert (plan.action, plan.original) == ("alias", "a.jpg")
    assert store.plan(ref("a.jpg", "changed")).action == "read"


def test_writing_the_same_page_twice_is_idempotent(store):
    put(store, ref("a.jpg"))
    put(store, ref("a.jpg"), code="000000000")
    (got,) = store.iter_rows()
    assert got.row.code_number == "123456782"


def test_a_copy_under_another_path_is_a_review_row_not_a_second_card(store):
    put(store, ref("a.jpg", "h1"), code="111111116")
    assert store.write_alias(ref("copy.jpg", "h1"), "a.jpg") == "review"
    got = rows(store)
    assert got["a.jpg#1"].status == "ok" and got["a.jpg#1"].flags == ()
    copy = got["copy.jpg#1"]
    assert copy.flags == ("duplicate_page:a.jpg",) and copy.status == "review"
    assert (copy.responses, copy.code_number, copy.correct) == ("AB-*?", "111111116", 2)
    with pytest.raises(StoreError, match="other.jpg page 1 is not stored"):
        store.write_alias(ref("x.jpg", "h9"), "other.jpg")


def test_duplicate_code_numbers_flag_every_card_that_carries_them(store):
    put(store, ref("a.jpg", "h1"), code="111111116")
    put(store, ref("b.jpg", "h2"), code="222222224", status="review", flags=("ambiguous:3",))
    assert put(store, ref("c.jpg", "h3"), code="111111116") == "review"
    put(store, ref("d.jpg", "h4"), code="222222224")
    store.write_alias(ref("e.jpg", "h1"), "a.jpg")
    got = rows(store)
    assert got["a.jpg#1"].flags == ("duplicate_code",) and got["a.jpg#1"].status == "review"
    assert got["c.jpg#1"].flags == ("duplicate_code",)
    assert got["b.jpg#1"].flags == ("ambiguous:3", "duplicate_code")
    assert got["d.jpg#1"].flags == ("duplicate_code",)
    assert got["e.jpg#1"].flags == ("duplicate_page:a.jpg", "duplicate_code")
    assert store.refresh_flags() == 0  # writes kept them up to date


def test_refresh_flags_repairs_the_store_wide_checks(store, tmp_path):
    put(store, ref("a.jpg", "h1"), code="111111116")
    put(store, ref("b.jpg", "h2"), code="111111116")
    put(store, ref("c.jpg", "h3"), code="222222224")
    put(store, ref("d.jpg", "h4"), code="222222224")
    db = sqlite3.connect(tmp_path / "r.sqlite")
    with db:
        db.execute("UPDATE pages SET status='ok', flags='' WHERE source='a.jpg'")  # lost its flag
        db.execute("DELETE FROM pages WHERE source='d.jpg'")  # c.jpg no longer shares its code
    db.close()
    assert store.refresh_flags() == 2
    got = rows(store)
    assert got["a.jpg#1"].flags == ("duplicate_code",) and got["a.jpg#1"].status == "review"
    assert got["c.jpg#1"].flags == () and got["c.jpg#1"].status == "ok"
    assert store.refresh_flags() == 0


def test_a_changed_file_supersedes_its_old_rows(store, tmp_path):
    put(store, ref("a.tif", "old", page=1), code="111111116")
    put(store, ref("a.tif", "old", page=2), code="222222224")
    put(store, ref("b.jpg", "hb"), code="111111116")
    assert rows(store)["b.jpg#1"].flags == ("duplicate_code",)
    put(store, ref("a.tif", "new", page=1), code="333333332")
    got = rows(store)
    assert set(got) == {"a.tif#1", "b.jpg#1"}
    assert got["a.tif#1"].code_number == "333333332"
    assert got["b.jpg#1"].flags == () and got["b.jpg#1"].status == "ok"
    db = sqlite3.connect(tmp_path / "r.sqlite")
    assert sorted(db.execute("SELECT page, content_hash FROM superseded")) == [(1, "old"), (2, "old")]


def test_a_copy_takes_over_when_the_first_path_changes(store):
    put(store, ref("a.jpg", "h1"))
    store.write_alias(ref("b.jpg", "h1"), "a.jpg")
    store.write_alias(ref("c.jpg", "h1"), "a.jpg")
    put(store, ref("a.jpg", "h2"), code="999999998")
    got = rows(store)
    assert got["b.jpg#1"].flags == () and got["b.jpg#1"].status == "ok"
    assert got["c.jpg#1"].flags == ("duplicate_page:b.jpg",)
    assert store.plan(ref("d.jpg", "h1")).original == "b.jpg"


def test_a_file_missing_now_keeps_its_stored_reading_and_failures_are_retried(store):
    put(store, ref("a.jpg", "h1"))
    assert store.plan(ref("a.jpg", "")).action == "skip"
    missing = ref("gone.jpg", "")
    put(store, missing, status="error", flags=("image_unreadable",))
    assert store.plan(missing).action == "read"
    put(store, missing, status="error", flags=("image_unreadable",))
    assert len(rows(store)) == 2
    put(store, ref("gone.jpg", "h5"), code="555555556")
    assert rows(store)["gone.jpg#1"].status == "ok"


def test_runs_see_their_pages_once(store):
    run1 = store.begin_run("scan a")
    put(store, ref("a.jpg", "h1"), run=run1)
    put(store, ref("b.jpg", "h2"), run=run1, status="error")
    assert store.plan(ref("a.jpg", "h1"), run_id=run1).action == "skip"
    counts = store.finish_run(run1, read=2, skipped=0, elapsed_s=0.1)
    assert (counts.pages, counts.ok, counts.error) == (2, 1, 1)
    run2 = store.begin_run("scan b")
    store.mark_seen([ref("b.jpg", "h2")], run2)
    put(store, ref("c.jpg", "h3"), run=run2)
    assert set(rows(store, run_id=run2)) == {"b.jpg#1", "c.jpg#1"}
    assert store.counts().pages == 3


def test_update_scores_writes_the_base_row_and_reapplies_store_checks(store):
    put(store, ref("a.jpg", "h1"), code="111111116")
    put(store, ref("b.jpg", "h2"), code="111111116", status="review", flags=("version_not_in_key",))
    base = {s.row.source: s.row for s in store.iter_rows(base=True)}
    assert base["a.jpg"].flags == () and base["b.jpg"].flags == ("version_not_in_key",)
    new = [replace(base["a.jpg"], correct=5, percent=Decimal("100.00"), passed=True),
           replace(base["b.jpg"], status="ok", flags=())]
    assert store.update_scores(new) == 2
    got = rows(store)
    a = got["a.jpg#1"]
    assert (a.correct, a.percent, a.passed) == (5, Decimal("100.00"), True)
    assert (got["a.jpg#1"].status, got["a.jpg#1"].flags) == ("review", ("duplicate_code",))
    assert (got["b.jpg#1"].status, got["b.jpg#1"].flags) == ("review", ("duplicate_code",))


def test_rescore_uses_the_stored_responses(store, tmp_path):
    from scoring import AnswerKey

    put(store, ref("a.jpg", "h1"), code="111111116")
    put(store, ref("b.jpg", "h2"), code="222222224", status="error")
    key = AnswerKey.from_dict({"versions": {"A": {"key": "ABCDE"}}, "pass_percent": 50})
    report = store.rescore(key)
    assert len(report.rows) == 2 and report.changed_score == 0  # the stand-in scored it alike
    got = rows(store)
    assert (got["a.jpg#1"].correct, got["a.jpg#1"].max_points, got["a.jpg#1"].passed) == (2, 5, False)
    assert got["b.jpg#1"].correct is None and got["b.jpg#1"].status == "error"
    annulled = {"versions": {"A": {"key": "ABCDE"}}, "annulled": [4, 5], "pass_percent": 50}
    report = store.rescore(AnswerKey.from_dict(annulled))
    assert (report.changed_score, report.failed_to_passed) == (1, 1)
    assert rows(store)["a.jpg#1"].percent == Decimal("66.67")


def test_effective_status_flags():
    assert effective_status_flags("ok", ("rotated:180",), None, False) == ("ok", ("rotated:180",))
    assert effective_status_flags("ok", (), "x.jpg", True) == (
        "review", ("duplicate_page:x.jpg", "duplicate_code"))
    assert effective_status_flags("review", ("duplicate_code", "a"), None, False) == ("review", ("a",))


def test_unusable_files_raise_store_error(tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="junk.sqlite: not a usable results store"):
        open_store(junk)
    future = tmp_path / "future.sqlite"
    db = sqlite3.connect(future)
    db.execute("CREATE TABLE pages (x)")
    db.execute("PRAGMA user_version = 99")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match=r"schema version 99, this omr reads version 2; .*new --db"):
        open_store(future)
    open_store(tmp_path / "l.sqlite", layout_name="lek-ldek-v1").close()
    with pytest.raises(StoreError, match="holds cards of layout 'lek-ldek-v1', this batch reads 'other'"):
        open_store(tmp_path / "l.sqlite", layout_name="other")


CONTENT_CODE = {"h1": "111111116", "h2": "111111116", "h3": "222222224", "h4": ""}


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcd"), st.sampled_from(["h1", "h2", "h3", "h4", ""])),
                min_size=1, max_size=12))
def test_store_invariants_hold_whatever_the_sequence_of_scans(scans):
    """Same content -> same reading; a scan plans, then reads or copies, as run_batch does."""
    with tempfile.TemporaryDirectory() as tmp, open_store(f"{tmp}/p.sqlite") as store:
        last: dict[str, str] = {}
        for source, content in scans:
            r = ref(source + ".jpg", content)
            plan = store.plan(r)
            if plan.action == "alias":
                store.write_alias(r, plan.original)
            elif plan.action == "read":
                unreadable = content == ""
                put(store, r, code=CONTENT_CODE.get(content, ""),
                    status="error" if unreadable or content == "h4" else "ok")
            if content or source + ".jpg" not in last:
                last.setdefault(source + ".jpg", content)
                if content:
                    last[source + ".jpg"] = content
        stored = list(store.iter_rows())
        by_source = {s.row.source: s for s in stored}
        assert len(by_source) == len(stored) == len(last)  # one row per page
        for source, content in last.items():
            assert by_source[source].content_hash == content
        originals = [s for s in stored if not s.duplicate_of and s.content_hash]
        assert len({s.content_hash for s in originals}) == len(originals)  # one reading per content
        for s in stored:
            if s.duplicate_of:
                first = by_source[s.duplicate_of]
                assert not first.duplicate_of and first.content_hash == s.content_hash
                assert f"duplicate_page:{s.duplicate_of}" in s.row.flags
        carried = Counter(s.row.code_number for s in stored if not s.duplicate_of and s.row.code_number)
        for s in stored:
            dup = carried[s.row.code_number] > 1 if s.row.code_number else False
            assert ("duplicate_code" in s.row.flags) == dup
            if dup or s.duplicate_of:
                assert s.row.status != "ok"
        assert store.refresh_flags() == 0


# -- cards of several parts: the part column, duplicates per part, old stores ------------


def part_outcome(r: PageRef, part: str, code: str = "123456782") -> PageOutcome:
    o = outcome(r, code=code)
    return replace(o, reading=replace(o.reading, part=part))


def test_the_parts_of_one_candidate_are_no_duplicate_codes_but_a_part_twice_is(tmp_path):
    with open_store(tmp_path / "p.sqlite", layout_name="cem-100", layout_parts=2) as s:
        for name, part in (("a.jpg", "1"), ("b.jpg", "2")):
            o = part_outcome(ref(name, name), part)
            s.write_outcome(o, o.row)
        assert {k: (r.status, r.flags) for k, r in rows(s).items()} == {"a.jpg#1": ("ok", ()),
                                                                       "b.jpg#1": ("ok", ())}
        o = part_outcome(ref("c.jpg", "c"), "2")
        s.write_outcome(o, o.row)
        got = {k: (r.status, r.flags) for k, r in rows(s).items()}
        assert got == {"a.jpg#1": ("ok", ()), "b.jpg#1": ("review", ("duplicate_code",)),
                       "c.jpg#1": ("review", ("duplicate_code",))}
        assert [(st.part, dict(st.row.extra)["part"]) for st in s.iter_rows()] == [(1, "1"), (2, "2"), (2, "2")]
        assert s.refresh_flags() == 0
        assert (s.layout_name, s.layout_parts) == ("cem-100", 2)
    with open_store(tmp_path / "p.sqlite") as s:  # later commands need not name the layout
        assert (s.layout_name, s.layout_parts) == ("cem-100", 2)


def test_a_store_of_one_part_cards_exports_no_part_column(store):
    put(store, ref("a.jpg"))
    assert [name for name, _ in next(store.iter_rows()).row.extra] == ["message"]


def test_an_older_store_without_the_part_column_is_migrated_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.sqlite"
    with open_store(path, layout_name="lek-ldek-v1") as s:
        put(s, ref("a.jpg", "h1"))
    db = sqlite3.connect(path)
    for table in ("pages", "superseded"):
        db.execute(f"ALTER TABLE {table} DROP COLUMN part")
    db.commit()
    db.close()
    with open_store(path, layout_name="lek-ldek-v1") as s:
        assert list(rows(s)) == ["a.jpg#1"]
        put(s, ref("a.jpg", "h2"))  # a changed file: the old row moves to superseded, by column name
        (moved,) = s._db.execute("SELECT source, content_hash, part, superseded_at FROM superseded").fetchall()
        assert moved[:3] == ("a.jpg", "h1", None) and moved[3].endswith("Z")
    with open_store(path) as s:  # migrating twice changes nothing
        assert {r[1] for r in s._db.execute("PRAGMA table_info(pages)")} >= {"part", "stored_at"}
# -- hostile names, several writers, runs (issue 16) ---------------------------------------


def test_a_name_that_is_not_utf8_is_stored_losslessly(store):
    odd = "card-\udcff\udcfe.jpg"  # os.fsdecode(b"card-\xff\xfe.jpg")
    r = ref(odd, "h1")
    run = store.begin_run()
    o = outcome(r, status="error")
    store.write_outcome(replace(o, message=f"no markers in {odd}"), scored(o.row), run)
    put(store, ref("copy;of.jpg", "h1"))
    (first, copy) = sorted(store.iter_rows(), key=lambda s: s.row.source != odd)
    assert first.row.source == odd and first.message == f"no markers in {odd}"
    assert copy.row.flags[-1] == "duplicate_page:card-\udcff\udcfe.jpg"
    assert store.plan(ref(odd, "h1")).action == "skip"
    assert store.fill_matrix(odd, 1) is None


def test_a_semicolon_in_a_name_cannot_add_flags_to_a_copy(store):
    put(store, ref("a;ok;registration_doubtful:x.jpg", "h1"))
    put(store, ref("copy.jpg", "h1"))
    copy = rows(store)["copy.jpg#1"]
    assert copy.flags == ("duplicate_page:a%3Bok%3Bregistration_doubtful:x.jpg",)


def test_the_same_file_given_by_another_form_of_its_path_is_the_same_page(store):
    relative = PageRef(source="scans/a.jpg", page=1, path="/work/scans/a.jpg", content_hash="h1", kind="jpeg")
    absolute = replace(relative, source="/work/scans/a.jpg")
    run1 = store.begin_run()
    o = outcome(relative)
    store.write_outcome(o, scored(o.row), run1)
    run2 = store.begin_run()
    assert store.plan(absolute, run_id=run2).action == "skip"
    store.mark_seen([absolute], run2)
    assert [s.row.source for s in store.iter_rows(run_id=run2)] == ["scans/a.jpg"]
    assert store.counts().pages == 1


def test_a_runs_export_keeps_pages_a_later_run_saw_too(store):
    run1 = store.begin_run()
    put(store, ref("a.jpg", "h1"), run=run1)
    put(store, ref("b.jpg", "h2"), run=run1, code="111111116")
    run2 = store.begin_run()
    store.mark_seen([ref("a.jpg", "h1")], run2)
    put(store, ref("b.jpg", "h2b"), run=run2, code="222222222")  # re-scanned into the same name
    assert set(rows(store, run_id=run1)) == {"a.jpg#1", "b.jpg#1"}
    assert rows(store, run_id=run1)["b.jpg#1"].code_number == "111111116"  # as run 1 stored it
    assert set(rows(store, run_id=run2)) == {"a.jpg#1", "b.jpg#1"}
    assert store.counts(run1).pages == 2 and store.has_run(run2) and not store.has_run(99)


def test_a_superseded_row_never_lends_its_id_to_another_page(store):
    run1 = store.begin_run()
    for page in (1, 2, 3):
        put(store, ref("m.tif", "h1", page=page), run=run1, code=f"10000000{page}")
    run2 = store.begin_run()
    put(store, ref("m.tif", "h2", page=1), run=run2)  # the file changed: its three rows move out
    assert sorted(rows(store, run_id=run1)) == ["m.tif#1", "m.tif#2", "m.tif#3"]
    assert sorted(rows(store, run_id=run2)) == ["m.tif#1"]


def test_a_page_whose_worker_crashed_is_read_again_once(store):
    crashed_ref = ref("c.jpg", "h1")
    crash = PageOutcome(crashed_ref, ResultRow(source="c.jpg", page=1, status="error", flags=("worker_crashed",)),
                        None, PageTimings(0, 0, 0), "BrokenProcessPool", "the worker process died")
    run1 = store.begin_run()
    store.write_outcome(crash, crash.row, run1)
    run2 = store.begin_run()
    assert store.plan(crashed_ref, run_id=run2).action == "read"
    store.write_outcome(crash, crash.row, run2)  # crashed again
    (again,) = store.iter_rows()
    assert again.row.status == "error" and "not retried again" in again.message
    run3 = store.begin_run()
    assert store.plan(crashed_ref, run_id=run3).action == "skip"
    assert set(rows(store, run_id=run1)) == {"c.jpg#1"}


def test_a_crashed_page_read_fine_on_the_rerun_replaces_its_error_row(store):
    crashed_ref = ref("c.jpg", "h1")
    crash = PageOutcome(crashed_ref, ResultRow(source="c.jpg", page=1, status="error", flags=("worker_crashed",)),
                        None, PageTimings(0, 0, 0), "BrokenProcessPool", "the worker process died")
    store.write_outcome(crash, crash.row, store.begin_run())
    run2 = store.begin_run()
    assert store.plan(crashed_ref, run_id=run2).action == "read"
    assert put(store, crashed_ref, run=run2) == "ok"
    assert [s.row.status for s in store.iter_rows()] == ["ok"]


def test_a_second_writer_is_refused_with_a_clear_message(tmp_path):
    from omr.errors import StoreLockedError

    path = tmp_path / "w.sqlite"
    with open_store(path, writer=True):
        with pytest.raises(StoreLockedError, match=r"another omr scan is writing this store \(omr scan pid \d+"):
            open_store(path, writer=True)
        with open_store(path) as reader:  # reading (export) is not refused
            assert reader.counts().pages == 0
    with open_store(path, writer=True):
        pass


def test_an_old_store_gets_the_new_parts_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.sqlite"
    with open_store(path) as s:
        put(s, ref("a.jpg", "h1"), run=s.begin_run())
    con = sqlite3.connect(path)
    con.execute("DROP TABLE run_pages")
    con.execute("DROP INDEX pages_path")
    con.execute("ALTER TABLE pages DROP COLUMN path")
    con.execute("ALTER TABLE pages DROP COLUMN crash_retried")
    con.commit()
    con.close()
    with open_store(path) as s:
        assert [r.row.source for r in s.iter_rows(run_id=1)] == ["a.jpg"]
        assert s.plan(ref("a.jpg", "h1")).action == "skip"
        put(s, ref("b.jpg", "h2"), run=s.begin_run())
        assert s.counts().pages == 2


def test_a_corrected_code_number_counts_duplicates_per_part(tmp_path):
    from omr.review.events import NewEvent
    from omr.review.results import resolved_rows

    with open_store(tmp_path / "p.sqlite", layout_name="cem-100", layout_parts=2) as s:
        for name, part, code in (("a.jpg", "1", "123456782"), ("b.jpg", "2", "000000000"),
                                 ("c.jpg", "1", "111111116")):
            o = part_outcome(ref(name, name), part, code=code)
            s.write_outcome(o, o.row)

        def correct(source, code):
            card = s.machine_cards(where="source=?", params=(source,))[0]
            s.append_events([NewEvent(card.source, card.page, card.content_hash, "anna", "code_number", "", code,
                                      1, "test", "", None)])

        correct("b.jpg", "123456782")  # the second part of a.jpg's candidate: no duplicate
        got = {r.source: (r.code_number, "duplicate_code" in r.flags) for r in resolved_rows(s)}
        assert got == {"a.jpg": ("123456782", False), "b.jpg": ("123456782", False),
                       "c.jpg": ("111111116", False)}
        correct("c.jpg", "123456782")  # another part 1 of that code number: both part-1 cards flagged
        got = {r.source: (r.code_number, "duplicate_code" in r.flags) for r in resolved_rows(s)}
        assert got == {"a.jpg": ("123456782", True), "b.jpg": ("123456782", False),
                       "c.jpg": ("123456782", True)}


def test_several_processes_creating_one_new_store_at_once_all_open_it(tmp_path):
    import threading

    errors = []
    for attempt in range(5):
        path = tmp_path / f"new-{attempt}.sqlite"
        start = threading.Barrier(6)

        def open_new():
            start.wait()
            try:
                open_store(path, layout_name="lek-ldek-v1").close()
            except Exception as err:  # noqa: BLE001 - collected, asserted below
                errors.append(err)

        threads = [threading.Thread(target=open_new) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
