"""Browser tests of the review station: real headless Chromium (Debian's) through Playwright."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from omr.cli import cli
from omr.review.results import resolved_rows
from omr.store import open_store
from tests.omr.review.helpers import KEY

pytest.importorskip("flask")
expect = pytest.importorskip("playwright.sync_api").expect


def key_letter(q: int) -> str:
    return KEY["versions"]["A"]["key"][q - 1]


def login(page, url: str, name: str) -> None:
    page.goto(url + "/")
    page.fill("#name", name)
    page.click("button[type=submit]")
    page.wait_for_selector("table.queue")


def open_card(page, name: str) -> None:
    page.click(f"table.queue a:text-is('{name}')")
    page.wait_for_selector("body[data-ready='1'] #panel")


def pick(page, letter: str) -> None:
    """Press a letter then Enter on the active item, and wait for the panel to come back."""
    before = page.locator("#audit tbody tr").count()
    page.keyboard.press(letter)
    page.keyboard.press("Enter")
    expect(page.locator("#audit tbody tr")).to_have_count(before + 1)


def rows_of(db):
    with open_store(db) as store:
        return {r.source.rsplit("/", 1)[-1]: r for r in resolved_rows(store)}


def test_an_examiner_resolves_doubts_by_keyboard_types_a_code_and_finalises(station_factory, page):
    st = station_factory()
    login(page, st.url, "anna")
    assert page.locator("table.queue tbody tr").count() == 3  # the three review cards
    open_card(page, "card-0.jpg")
    score_before = page.inner_text("#score")
    assert page.locator(".item.active").get_attribute("data-field") == "answer:5"
    pick(page, key_letter(5).lower())
    assert page.locator(".item.active").get_attribute("data-field") == "answer:17"  # moved on
    assert page.inner_text("#score") != score_before
    pick(page, key_letter(17))
    assert page.inner_text("#score").startswith("45 / 200")  # both now right: 43 + 2
    audit = page.inner_text("#audit")
    assert "answer:5" in audit and "answer:17" in audit and "anna" in audit and "? → E" in audit
    page.wait_for_selector("#ready")
    page.keyboard.press("Enter")  # finalise: the next card opens
    expect(page.locator("#panel h1")).to_contain_text("card-2.jpg")
    page.wait_for_selector("body[data-ready='1'] .code-input")
    page.keyboard.type("171429385")  # a wrong check digit
    assert "Luhn check fails" in page.inner_text("#luhn")
    page.fill(".code-input", "")
    code = rows_of(st.db)["card-2.jpg"].code_number
    page.keyboard.type(code)
    assert "✓" in page.inner_text("#luhn")
    page.keyboard.press("Enter")
    page.wait_for_selector("#ready")
    page.keyboard.press("f")
    expect(page.locator("#panel h1")).to_contain_text("card-1.jpg")  # the last card left opens
    rows = rows_of(st.db)
    assert rows["card-0.jpg"].status == "verified" and rows["card-0.jpg"].correct == 45
    assert dict(rows["card-0.jpg"].extra)["verified_by"] == "anna"
    # the barcode's code number confirmed: verified, and the value is still the machine's
    assert (
        rows["card-2.jpg"].status == "verified"
        and dict(rows["card-2.jpg"].extra)["value_source"] == "machine"
    )
    page.goto(st.url + "/")
    assert page.locator("tr.state-verified").count() == 2


def test_undo_is_a_compensating_event_and_postpone_moves_on(station_factory, page):
    st = station_factory()
    login(page, st.url, "anna")
    open_card(page, "card-0.jpg")
    pick(page, "a")
    page.keyboard.press("u")
    expect(page.locator("#audit tbody tr")).to_have_count(2)
    assert "undoes #1" in page.inner_text("#audit")
    assert page.locator(".item[data-field='answer:5'] .current").inner_text() == "?"
    page.keyboard.press("p")
    expect(page.locator("#panel h1")).not_to_contain_text("card-0.jpg")  # the next card opened
    with open_store(st.db) as store:
        assert [e.field for e in store.review_events()] == ["answer:5", "answer:5", "postponed"]


def test_the_by_question_mode_decides_one_question_across_cards(station_factory, page):
    st = station_factory()
    login(page, st.url, "anna")
    page.goto(st.url + "/question/42")
    page.wait_for_selector("body[data-ready='1'] #tiles")
    assert page.locator(".tile").count() == 1
    page.keyboard.press(key_letter(42))
    page.keyboard.press("Enter")
    page.wait_for_selector("#nothing-left")
    assert rows_of(st.db)["card-1.jpg"].responses[41] == key_letter(42)


def test_a_second_examiner_disagreeing_goes_to_the_supervisor(browser, station_factory):
    st = station_factory(double_entry=True)
    pages = {}
    for name in ("anna", "bob", "carol"):
        pages[name] = browser.new_context(viewport={"width": 1300, "height": 900}).new_page()
        pages[name].set_default_timeout(5000)
        login(pages[name], st.url, name)
    anna, bob, carol = pages["anna"], pages["bob"], pages["carol"]
    open_card(anna, "card-0.jpg")
    pick(anna, key_letter(5))
    pick(anna, key_letter(17))
    here = anna.url
    anna.keyboard.press("Enter")
    anna.wait_for_url(lambda url: url != here)
    open_card(bob, "card-0.jpg")
    assert "round 2 (blind)" in bob.inner_text("#panel")
    assert bob.locator("#audit tbody tr").count() == 0  # anna's entry is not shown
    assert bob.locator(".item[data-field='answer:17'] .current").inner_text() == "?"
    pick(bob, key_letter(5))
    pick(bob, "-")  # bob reads question 17 as blank: a disagreement
    here = bob.url
    bob.keyboard.press("Enter")
    bob.wait_for_url(lambda url: url != here)
    assert rows_of(st.db)["card-0.jpg"].status == "review"
    carol.goto(st.url + "/supervisor")
    assert carol.locator("#supervisor tbody tr").count() == 1
    carol.click("#supervisor a")
    carol.wait_for_selector("body[data-ready='1'] #panel")
    item = carol.locator(".item[data-field='answer:17']")
    assert "anna:" in item.inner_text() and "bob:" in item.inner_text()
    pick(carol, key_letter(17))
    here = carol.url
    carol.keyboard.press("Enter")  # finalise: off to the next card, or the queue
    carol.wait_for_url(lambda url: url != here)
    row = rows_of(st.db)["card-0.jpg"]
    assert row.status == "verified" and dict(row.extra)["verified_by"] == "anna;bob;carol"
    assert row.responses[16] == key_letter(17)
    anna.goto(st.url + "/stats")
    stats = anna.inner_text("#stats")
    assert "bob" in stats and "carol" in stats
    for p in pages.values():
        p.context.close()


def test_off_loopback_every_request_needs_the_token(station_factory, page):
    st = station_factory(token="s3cret-token")  # bound to loopback, configured as off it

    def status(path: str, **headers: str) -> int:
        try:
            with urllib.request.urlopen(
                urllib.request.Request(st.url + path, headers=headers), timeout=5
            ) as r:
                return r.status
        except urllib.error.HTTPError as err:
            err.close()
            return err.code

    for path in ("/", "/login", "/static/htmx.min.js", "/card/1/image.jpg"):
        assert status(path) == 403
    assert status("/login", **{"X-Review-Token": "wrong"}) == 403
    assert status("/login", **{"X-Review-Token": "s3cret-token"}) == 200
    response = page.goto(st.url + "/")
    assert response.status == 403
    page.goto(st.url + "/?token=s3cret-token")  # once: the cookie carries it after
    page.fill("#name", "anna")
    page.click("button[type=submit]")
    page.wait_for_selector("table.queue")
    open_card(page, "card-0.jpg")
    pick(page, "a")  # htmx requests carry the cookie and the CSRF token
    # a POST with the token cookie but without the CSRF token is refused
    refused = page.context.request.post(page.url + "/undo", form={"content_hash": "x"})
    assert refused.status == 400 and "CSRF" in refused.text()


def test_omr_review_refuses_off_loopback_without_a_token(tmp_path):
    result = CliRunner().invoke(cli, ["review", "--db", str(tmp_path / "none.sqlite"), "--host", "0.0.0.0"])
    assert result.exit_code == 2
    db = tmp_path / "s.sqlite"
    open_store(db).close()
    result = CliRunner().invoke(cli, ["review", "--db", str(db), "--host", "0.0.0.0"])
    assert result.exit_code == 2 and "give --token" in result.output


def test_omr_review_prints_its_url_and_serves(review_fixture, tmp_path):
    from tests.omr.review.conftest import copy_store

    db = copy_store(review_fixture.db, tmp_path / "s.sqlite")
    omr = Path(sys.executable).parent / "omr"
    with subprocess.Popen(
        [
            str(omr),
            "review",
            "--db",
            str(db),
            "--port",
            "0",
            "--host",
            "127.0.0.2",
            "--token",
            "token-123456",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        try:
            line = proc.stdout.readline()
            url = re.search(r"http://\S+", line).group(0)
            assert url.startswith("http://127.0.0.2:") and url.endswith("/?token=token-123456")
            with urllib.request.urlopen(url.replace("/?", "/login?"), timeout=5) as response:
                assert response.status == 200 and b"Your name" in response.read()
            with pytest.raises(urllib.error.HTTPError, match="403") as refused:
                urllib.request.urlopen(url.split("?")[0] + "login", timeout=5)
            refused.value.close()
        finally:
            proc.terminate()
            proc.wait(timeout=10)
