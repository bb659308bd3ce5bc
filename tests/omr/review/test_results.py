import csv
import json
import sqlite3

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from omr.cli import cli
from omr.layout import load_layout
from omr.review.events import NewEvent, resolve_card
from omr.review.results import resolved_rows
from omr.store import _SCHEMA, open_store
from tests.omr.review.helpers import KEY, doubtful_card, make_review_store


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    return make_review_store(tmp_path_factory.mktemp("review"), n=4)


@pytest.fixture
def store_copy(fixture, tmp_path):
    """A private copy of the module's store (tests write events into it)."""
    target = tmp_path / "copy.sqlite"
    src = sqlite3.connect(fixture.db)
    dst = sqlite3.connect(target)
    src.backup(dst)
    src.close()
    dst.close()
    return target


def decide(store, source, field, after, who="anna", round_=1, undoes=None):
    card = store.machine_cards(where="source=?", params=(source,))[0]
    return store.append_events(
        [
            NewEvent(
                card.source, card.page, card.content_hash, who, field, "", after, round_, "test", "", undoes
            )
        ]
    )[0]


def export(db, tmp_path, name="out.csv"):
    out = tmp_path / name
    result = CliRunner().invoke(cli, ["export", "--db", str(db), "--out", str(out)])
    assert result.exit_code == 0, result.output
    with open(out, newline="", encoding="utf-8") as fh:
        return {r["source"]: r for r in csv.DictReader(fh)}


def key_letter(q):
    return KEY["versions"]["A"]["key"][q - 1]


def resolve_all(store, fixture):
    """Resolve every doubt of the fixture's cards the right way and confirm them."""
    for source, questions in fixture.doubts.items():
        for q in questions:
            decide(store, source, f"answer:{q}", key_letter(q))
    decide(store, fixture.mismatch, "code_number", fixture.codes[fixture.mismatch])
    for source, questions in fixture.doubts.items():
        if questions or source == fixture.mismatch:
            decide(store, source, "card_confirmed", "yes")


def test_the_event_table_refuses_update_and_delete(store_copy):
    with open_store(store_copy) as store:
        source = store.machine_cards()[0].source
        decide(store, source, "answer:5", "C")
    db = sqlite3.connect(store_copy)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE review_events SET value_after='D'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM review_events")
    assert db.execute("SELECT value_after FROM review_events").fetchall() == [("C",)]


def test_an_older_store_gains_the_review_columns_and_table_when_opened(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(_SCHEMA + "\nPRAGMA user_version = 2;")
    db.close()
    for _ in range(2):  # idempotent
        open_store(path).close()
    db = sqlite3.connect(path)
    columns = {r[1] for r in db.execute("PRAGMA table_info(superseded)")}
    assert {"path", "homography", "box_shifts"} <= columns
    assert (
        db.execute("SELECT count(*) FROM sqlite_master WHERE name LIKE 'review_events%'").fetchone()[0] == 4
    )


def test_the_scan_stores_each_pages_homography(fixture):
    with open_store(fixture.db) as store:
        for card in store.machine_cards():
            geo = store.page_geometry(card.source, card.page)
            assert geo.homography.shape == (3, 3) and geo.content_hash == card.content_hash
            # the page's top-left marker corner: near the image's origin at 100 DPI
            layout = load_layout()
            corner = geo.homography @ np.array([*layout.markers.corners()[0][0], 1.0])
            assert np.allclose(corner[:2] / corner[2], layout.markers.corners()[0][0] * 100 / 25.4, atol=2)


def test_export_has_the_current_values_verified_status_and_new_scores(fixture, store_copy, tmp_path):
    before = export(store_copy, tmp_path, "before.csv")
    with open_store(store_copy) as store:
        resolve_all(store, fixture)
    after = export(store_copy, tmp_path)
    first = next(s for s, q in fixture.doubts.items() if q == (5, 17))
    assert before[first]["status"] == "review" and before[first]["responses"][4] == "?"
    row = after[first]
    assert row["status"] == "verified" and row["verified_by"] == "anna" and row["value_source"] == "examiner"
    assert row["responses"][4] == key_letter(5) and row["responses"][16] == key_letter(17)
    assert int(row["correct"]) == int(before[first]["correct"]) + 2
    assert row["flags"] == before[first]["flags"]  # why it was reviewed stays on the row
    code_row = after[fixture.mismatch]
    assert code_row["status"] == "verified" and code_row["code_number"] == fixture.codes[fixture.mismatch]
    clean = next(s for s, q in fixture.doubts.items() if not q and s != fixture.mismatch)
    assert after[clean]["status"] == "ok" and after[clean]["value_source"] == "machine"
    assert after[clean]["verified_by"] == ""


def test_corrections_survive_rescore_with_a_new_key(fixture, store_copy, tmp_path):
    with open_store(store_copy) as store:
        resolve_all(store, fixture)
    annulled = dict(KEY, annulled=[1])
    key2 = tmp_path / "key2.json"
    key2.write_text(json.dumps(annulled))
    out = tmp_path / "re.csv"
    result = CliRunner().invoke(
        cli, ["rescore", "--db", str(store_copy), "--key", str(key2), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    rows = export(store_copy, tmp_path)
    with open(out, newline="", encoding="utf-8") as fh:
        assert {r["source"]: r for r in csv.DictReader(fh)} == rows
    first = next(s for s, q in fixture.doubts.items() if q == (5, 17))
    assert rows[first]["status"] == "verified" and rows[first]["max_points"] == "199"
    assert rows[first]["responses"][4] == key_letter(5)
    with open_store(store_copy) as store:  # the stored reading itself is unchanged
        assert store.machine_cards(where="source=?", params=(first,))[0].responses[4] == "?"


def test_corrections_survive_a_rerun_and_a_rescan_keeps_the_history(fixture, store_copy, tmp_path):
    with open_store(store_copy) as store:
        resolve_all(store, fixture)
    args = ["scan", str(fixture.folder), "--key", str(fixture.key), "--db", str(store_copy), "--workers", "1"]
    assert CliRunner().invoke(cli, args).exit_code == 0
    rows = export(store_copy, tmp_path)
    assert sum(r["status"] == "verified" for r in rows.values()) == 3
    # re-scan card 1 into the same path: a new reading, its doubt back, its history kept
    second = next(s for s, q in fixture.doubts.items() if q == (42,))
    img, _ = doubtful_card(load_layout(), 101, fixture.codes[second], (42, 60))
    assert cv2.imwrite(second, img, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert CliRunner().invoke(cli, args).exit_code == 0
    rows = export(store_copy, tmp_path)
    assert rows[second]["status"] == "review" and rows[second]["value_source"] == "machine"
    with open_store(store_copy) as store:
        card = store.machine_cards(where="source=?", params=(second,))[0]
        history = store.review_events(second, 1)
        assert {e.field for e in history} == {"answer:42", "card_confirmed"}
        assert all(e.content_hash != card.content_hash for e in history)
        assert not resolve_card(card, history).verified


def test_a_corrected_code_number_ends_a_duplicate(tmp_path):
    from tests.omr.review.helpers import make_review_store as make

    fx = make(tmp_path, n=3)
    with open_store(fx.db) as store:
        cards = store.machine_cards()
        mismatch = next(c for c in cards if c.source == fx.mismatch)
        other = next(c for c in cards if c.source != fx.mismatch)
        # the examiner first types the other card's code number on the mismatch card: a duplicate
        decide(store, mismatch.source, "code_number", other.code_number)
        decide(store, mismatch.source, "card_confirmed", "yes")
        rows = {r.source: r for r in resolved_rows(store)}
        assert rows[mismatch.source].status == "review" and "duplicate_code" in rows[mismatch.source].flags
        assert "duplicate_code" in rows[other.source].flags and rows[other.source].status == "review"
        # then corrects it
        decide(store, mismatch.source, "code_number", fx.codes[fx.mismatch])
        rows = {r.source: r for r in resolved_rows(store)}
        assert rows[mismatch.source].status == "verified"
        assert "duplicate_code" not in rows[other.source].flags
