"""Key revisions in the results store: one key per store, never a silent mix (issue 16 item 7)."""

import sqlite3
from dataclasses import replace

import pytest

from omr.batch import run_batch
from omr.errors import StoreError
from omr.layout import load_layout
from omr.pages import iter_pages
from omr.store import _SCHEMA, SCHEMA_VERSION, open_store
from scoring import AnswerKey, key_to_dict, score_rows
from scoring.rows import with_details
from tests.omr.batch_helpers import write_cards
from tests.omr.test_store import outcome, ref

FIVE = {"versions": {"A": {"key": "ABCDE"}}, "pass_percent": 50}


def key(**changes) -> AnswerKey:
    return AnswerKey.from_dict({**FIVE, **changes})


def put(store, name, content, *, with_key, revision=None):
    o = outcome(ref(name, content))
    return store.write_outcome(o, score_rows([o.row], with_key)[0], key_revision=revision)


def scores(store):
    return {s.row.source: (s.row.correct, s.row.max_points, s.row.percent) for s in store.iter_rows()}


def export(store):
    """What an export writes: every row, with the per-field columns of the store's one key."""
    return list(with_details((s.row for s in store.iter_rows()), store.one_key()))


def revisions(db):
    with sqlite3.connect(db) as con:
        return dict(con.execute("SELECT source, key_revision FROM pages"))


def test_a_new_key_is_the_next_revision_and_rescores_every_page(tmp_path):
    db = tmp_path / "r.sqlite"
    with open_store(db) as store:
        first = store.apply_key(key(), by="scan", reason="omr scan --key k1.json", source="k1.json")
        assert (first.added, first.previous, first.revision.number, first.report) == (True, None, 1, None)
        put(store, "a.jpg", "h1", with_key=key(), revision=1)  # responses AB-*? : 2 of 5
        assert scores(store)["a.jpg"][:2] == (2, 5)
        again = store.apply_key(key(), by="someone", reason="same key again")
        assert (again.added, again.revision.number, again.report) == (False, 1, None)
        second = store.apply_key(key(annulled=[3, 4]), by="Komisja", reason="objections: 3, 4 annulled")
        assert (second.added, second.revision.number, second.previous.number) == (True, 2, 1)
        assert second.report.changed_score == 1
        assert scores(store)["a.jpg"][:2] == (2, 3)
        back = store.apply_key(key(), by="Komisja", reason="annulment withdrawn")
        assert (back.revision.number, back.same_as) == (3, 1)
        assert [(r.number, r.created_by, r.reason) for r in store.key_revisions()] == [
            (1, "scan", "omr scan --key k1.json"),
            (2, "Komisja", "objections: 3, 4 annulled"),
            (3, "Komisja", "annulment withdrawn"),
        ]
        assert key_to_dict(store.key_revision(2).key) == key_to_dict(key(annulled=[3, 4]))
        assert store.current_revision().number == 3 and store.pages_per_revision() == {3: 1}
    assert revisions(db) == {"a.jpg": 3}


def test_a_write_group_scored_with_an_older_revision_is_rescored_with_the_current(tmp_path):
    """A scan holds key revision 1; another process adds revision 2 while it reads: the
    scan's next write is scored with revision 2 under the write lock, never mixed."""
    db = tmp_path / "r.sqlite"
    k1, k2 = key(), key(annulled=[1])
    with open_store(db) as scanning:
        assert scanning.apply_key(k1, by="scan", reason="k1").revision.number == 1
        put(scanning, "a.jpg", "h1", with_key=k1, revision=1)
        with open_store(db) as other:  # omr rescore --db from another terminal
            assert other.rescore(k2, by="examiner", reason="1 annulled").changed_score == 1
        assert scanning.late_revision is None
        put(scanning, "b.jpg", "h2", with_key=k1, revision=1)  # scored with k1 in memory
        assert scanning.late_revision == 2
        got = scores(scanning)
        assert got["a.jpg"] == got["b.jpg"] == (1, 4, got["a.jpg"][2])  # 'A' annulled: 1 of 4
        assert export(scanning)  # one key: the export's details add up
    assert revisions(db) == {"a.jpg": 2, "b.jpg": 2}


def test_a_rescore_while_a_batch_writes_leaves_one_key(tmp_path, monkeypatch):
    """Through the real batch loop: a revision added after the first write group."""
    import omr.batch as batch

    monkeypatch.setattr(batch, "WRITE_GROUP_PAGES", 1)
    layout = load_layout()
    write_cards(tmp_path / "scans", 4, layout, seed=3)
    k1 = AnswerKey.from_dict({"versions": {"A": {"key": "ABCDE" * 40}}, "pass_percent": 56})
    k2 = AnswerKey.from_dict(
        {"versions": {"A": {"key": "ABCDE" * 40}}, "pass_percent": 56, "annulled": list(range(1, 21))}
    )
    db = tmp_path / "r.sqlite"
    added = []

    def on_page(event):
        if not added:
            with open_store(db) as other:
                added.append(other.rescore(k2, by="examiner", reason="20 annulled"))

    with open_store(db, layout_name=layout.name) as store:
        rev = store.apply_key(k1, by="scan", reason="k1").revision.number
        summary = run_batch(
            iter_pages([str(tmp_path / "scans")]),
            store,
            layout,
            score=lambda rows: score_rows(rows, k1),
            on_page=on_page,
            key_revision=rev,
        )
        assert summary.read == 4 and len(added) == 1 and store.late_revision == 2
        rows = [s.row for s in store.iter_rows()]
        assert {r.max_points for r in rows} == {180}
        assert [r.correct for r in rows] == [r.correct for r in score_rows(rows, k2)]
        assert len(export(store)) == 4
    assert set(revisions(db).values()) == {2}


def test_an_export_refuses_a_store_that_mixes_keys(tmp_path):
    db = tmp_path / "r.sqlite"
    with open_store(db) as store:
        store.apply_key(key(), by="scan", reason="k1")
        put(store, "a.jpg", "h1", with_key=key(), revision=1)
        put(store, "b.jpg", "h2", with_key=key(), revision=1)
    with sqlite3.connect(db) as con:  # as an omr from before key revisions would write it
        con.execute("UPDATE pages SET key_revision=NULL WHERE source='b.jpg'")
    with open_store(db) as store:
        with pytest.raises(StoreError, match=r"1 pages \(e.g. b.jpg\) were scored with another key"):
            export(store)
        repaired = store.apply_key(key(), by="examiner", reason="repair")
        assert not repaired.added and len(repaired.report.rows) == 1
        assert len(export(store)) == 2


def test_a_store_from_before_key_revisions_is_migrated_in_place(tmp_path):
    db = tmp_path / "old.sqlite"
    con = sqlite3.connect(db)
    con.executescript(f"{_SCHEMA}\nPRAGMA user_version = {SCHEMA_VERSION};")
    con.execute(
        "INSERT INTO pages (source, page, content_hash, status, base_status, responses, version, "
        "correct, max_points, percent, passed, stored_at) VALUES ('a.jpg', 1, 'h1', 'ok', 'ok', "
        "'AB-*?', 'A', 5, 5, '100.00', 1, 'then')"
    )
    con.commit()
    con.close()
    with open_store(db) as store:
        assert store.current_revision() is None and store.pages_per_revision() == {None: 1}
        assert [s.row.correct for s in store.iter_rows()] == [5]  # read as it was
        applied = store.apply_key(key(), by="scan", reason="first key")
        assert applied.revision.number == 1 and applied.report.changed_score == 1
        assert scores(store)["a.jpg"][:2] == (2, 5)
        # the changed file supersedes its old row column by column (orders differ after migration)
        put(store, "a.jpg", "h2", with_key=key(), revision=1)
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT content_hash, key_revision, correct FROM superseded").fetchall() == [
            ("h1", 1, 2)
        ]
    with open_store(db):  # a second open finds everything in place and writes nothing
        pass


def test_apply_key_is_one_transaction(tmp_path, monkeypatch):
    db = tmp_path / "r.sqlite"
    with open_store(db) as store:
        store.apply_key(key(), by="scan", reason="k1")
        put(store, "a.jpg", "h1", with_key=key(), revision=1)
        import scoring

        def broken(rows, k, **kw):
            raise RuntimeError("disk gone mid-way")

        monkeypatch.setattr(scoring, "rescore_rows", broken)
        with pytest.raises(RuntimeError, match="disk gone"):
            store.apply_key(key(annulled=[1]), by="x", reason="y")
        assert [r.number for r in store.key_revisions()] == [1]
        assert scores(store)["a.jpg"][:2] == (2, 5)
    assert revisions(db) == {"a.jpg": 1}


def test_key_to_dict_round_trips():
    k = AnswerKey.from_dict(
        {
            "exam": "LEK",
            "session": "2026-09",
            "versions": {"A": {"key": "A" * 200}, "B": {"key": "B" * 200, "order": list(range(200, 0, -1))}},
            "annulled": [17],
            "accepted": {"45": "BD"},
            "annulled_policy": "credit",
        }
    )
    assert AnswerKey.from_dict(key_to_dict(k), source=k.source) == k
    assert replace(k, source="elsewhere") != k and key_to_dict(replace(k, source="x")) == key_to_dict(k)
