import sqlite3
import threading
import time

import cv2
import pytest
from click.testing import CliRunner

from omr.cli import cli
from omr.errors import ReviewError
from omr.layout import load_layout
from omr.review.results import resolved_rows
from omr.review.service import ReviewService
from tests.omr.review.conftest import copy_store
from tests.omr.review.helpers import KEY, doubtful_card, make_review_store


def letter(q):
    return KEY["versions"]["A"]["key"][q - 1]


@pytest.fixture
def service(review_fixture, tmp_path):
    return ReviewService(copy_store(review_fixture.db, tmp_path / "s.sqlite"), load_layout())


def entry(service, name, examiner="anna"):
    return next(e for e in service.queue(examiner) if e.card.source.endswith(name))


def test_a_rescanned_page_is_decided_afresh_and_can_take_the_earlier_decisions(tmp_path):
    fx = make_review_store(tmp_path, n=2)  # its own scans: this test re-scans one
    service = ReviewService(fx.db, load_layout())
    e = entry(service, "card-1.jpg")
    service.decide(e.id, e.card.content_hash, "anna", "answer:42", letter(42))
    service.finalise(e.id, e.card.content_hash, "anna")
    source = e.card.source
    img, _ = doubtful_card(load_layout(), 101, fx.codes[source], (42, 60))
    assert cv2.imwrite(source, img, [cv2.IMWRITE_JPEG_QUALITY, 80])  # re-scanned into the same path
    args = ["scan", str(fx.folder), "--key", str(fx.key), "--db", str(fx.db), "--workers", "1"]
    assert CliRunner().invoke(cli, args).exit_code == 0
    new = entry(service, "card-1.jpg")
    assert new.id != e.id and new.state == "todo"
    view = service.card_view(new.id, "anna")
    assert [ev.field for ev in view.history] == ["answer:42", "card_confirmed"]
    assert view.view.unresolved == ("answer:42", "answer:60")
    assert service.carry_over(new.id, new.card.content_hash, "anna") == 1
    view = service.card_view(new.id, "anna")
    assert view.view.unresolved == ("answer:60",) and view.events[-1].reason == "earlier scan"
    with pytest.raises(ReviewError, match="doubts left: answer:60"):
        service.finalise(new.id, new.card.content_hash, "anna")
    service.decide(new.id, new.card.content_hash, "anna", "answer:60", letter(60))
    service.finalise(new.id, new.card.content_hash, "anna")
    rows = {r.source: r for r in resolved_rows(service.store())}
    assert rows[source].status == "verified"
    with pytest.raises(ReviewError, match="re-scanned"):  # a decision on the old reading is refused
        service.decide(new.id, e.card.content_hash, "anna", "answer:42", "A")


def test_a_decision_waits_for_the_scanners_write_and_does_not_fail(service):
    e = entry(service, "card-0.jpg")
    scanner = sqlite3.connect(service.db_path, isolation_level=None, check_same_thread=False)
    scanner.execute("BEGIN IMMEDIATE")  # the scanner writing a group of pages
    release = threading.Timer(0.4, lambda: scanner.execute("COMMIT"))
    release.start()
    t0 = time.perf_counter()
    service.decide(e.id, e.card.content_hash, "anna", "answer:5", letter(5))
    assert time.perf_counter() - t0 >= 0.3
    release.join()
    scanner.close()
    assert [ev.field for ev in service.store().review_events()] == ["answer:5"]
    # reads never wait: the queue is served while the scanner holds its write lock
    scanner = sqlite3.connect(service.db_path, isolation_level=None)
    scanner.execute("BEGIN IMMEDIATE")
    t0 = time.perf_counter()
    assert service.card_view(e.id, "anna").view.examiner_fields == ("answer:5",)
    assert time.perf_counter() - t0 < 0.5
    scanner.execute("COMMIT")
    scanner.close()


def test_finalising_with_a_doubt_left_and_a_second_entry_by_the_same_examiner_are_refused(
    review_fixture, tmp_path
):
    service = ReviewService(
        copy_store(review_fixture.db, tmp_path / "d.sqlite"), load_layout(), double_entry=True
    )
    e = entry(service, "card-0.jpg")
    with pytest.raises(ReviewError, match="doubts left: answer:5, answer:17"):
        service.finalise(e.id, e.card.content_hash, "anna")
    service.decide(e.id, e.card.content_hash, "anna", "answer:5", letter(5))
    service.decide(e.id, e.card.content_hash, "anna", "answer:17", letter(17))
    service.finalise(e.id, e.card.content_hash, "anna")
    assert entry(service, "card-0.jpg").state == "waiting"  # for anna: the second entry is someone else's
    assert entry(service, "card-0.jpg", "bob").entry_round == 2
    with pytest.raises(ReviewError, match="finalised in your entry"):
        service.decide(e.id, e.card.content_hash, "anna", "answer:5", "A")
