"""Fixtures of the review station's tests: a generated store, the app served, a browser."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from omr.layout import load_layout
from omr.review.app import ServerThread, create_app
from omr.review.service import ReviewService
from tests.omr.review.helpers import ReviewFixture, make_review_store


@pytest.fixture(scope="session")
def review_fixture(tmp_path_factory: pytest.TempPathFactory) -> ReviewFixture:
    return make_review_store(tmp_path_factory.mktemp("review-store"), n=4)


def copy_store(src: Path, target: Path) -> Path:
    """A private copy of a store (tests write events into theirs)."""
    a, b = sqlite3.connect(src), sqlite3.connect(target)
    a.backup(b)
    a.close()
    b.close()
    return target


@dataclass
class Station:
    """A running review station: its URL, its service, its store file."""

    url: str
    service: ReviewService
    db: Path


@pytest.fixture
def station_factory(review_fixture: ReviewFixture, tmp_path: Path) -> Iterator:
    servers = []

    def start(*, token: str | None = None, double_entry: bool = False, host: str = "127.0.0.1") -> Station:
        db = copy_store(review_fixture.db, tmp_path / f"store-{len(servers)}.sqlite")
        service = ReviewService(db, load_layout(), double_entry=double_entry)
        server = ServerThread(create_app(service, token=token), host, 0, threads=4)
        servers.append(server)
        return Station(f"http://{host}:{server.port}", service, db)

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator:
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium")
        yield b
        b.close()


@pytest.fixture
def page(browser) -> Iterator:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(5000)
    yield pg
    context.close()
