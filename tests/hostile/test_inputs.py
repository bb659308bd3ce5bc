"""Hostile and careless inputs to ``omr scan``: one row per page or a clear failure."""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.hostile.conftest import run_omr, scan
from tests.omr.test_pages import _jpeg_claiming, _pdf_without_pages, _png_header

#: the most a scan reading one hostile file in-process may take (its baseline is ~200 MB)
PEAK_RSS_MB = 600


def write(folder: Path, cards: list[bytes], n: int, prefix: str = "card") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"{prefix}-{i}.jpg"
        path.write_bytes(cards[i])
        paths.append(path)
    return paths


def by_name(rows: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    return {os.path.basename(r["source"]): r for r in rows}


def test_a_pipe_and_a_device_among_cards_are_error_rows_not_a_hang(tmp_path, key_path, card_bytes):
    write(tmp_path / "in", card_bytes, 2)
    os.mkfifo(tmp_path / "in" / "pipe.jpg")
    (tmp_path / "in" / "zero.png").symlink_to("/dev/zero")
    run = scan(tmp_path, key_path, "in", timeout=30)
    run.assert_clean()
    rows = by_name(run.rows)
    assert len(run.rows) == 4 and run.returncode == 1
    assert rows["pipe.jpg"]["status"] == "error" and "named pipe" in rows["pipe.jpg"]["message"]
    assert rows["zero.png"]["status"] == "error" and "character device" in rows["zero.png"]["message"]
    inspect = run_omr("inspect", "in/pipe.jpg", "--out", "o.png", cwd=tmp_path, timeout=20)
    inspect.assert_clean()
    assert inspect.returncode != 0 and "named pipe" in inspect.stderr


def test_a_name_that_is_not_utf8_is_stored_exported_and_skipped_on_a_rerun(tmp_path, key_path, card_bytes):
    folder = tmp_path / "in"
    folder.mkdir()
    with open(os.fsencode(folder) + b"/card-\xff.jpg", "wb") as fh:  # not valid UTF-8
        fh.write(card_bytes[0])
    first = scan(tmp_path, key_path, "in")
    first.assert_clean()
    assert first.returncode == 0 and [r["source"] for r in first.rows] == ["in/card-\\xff.jpg"]
    again = scan(tmp_path, key_path, "in")
    assert again.returncode == 0 and "already stored 1" in again.stdout
    jsonl = run_omr("export", "--db", "r.sqlite", "--jsonl", "r.jsonl", cwd=tmp_path)
    jsonl.assert_clean()
    assert b'"in/card-\\udcff.jpg"' in (tmp_path / "r.jsonl").read_bytes()  # lossless in JSON


def test_unlistable_paths_are_rows_links_are_followed_and_skipped_names_said(tmp_path, key_path, card_bytes):
    write(tmp_path / "other", card_bytes, 3, "linked")
    write(tmp_path / "in", card_bytes[3:], 1)
    (tmp_path / "in" / "anim.gif").write_bytes(b"GIF89a")
    (tmp_path / "in" / "notes.txt").write_text("x")
    (tmp_path / "in" / "scans").symlink_to(tmp_path / "other")
    fd = os.open(tmp_path / "in", os.O_RDONLY)
    for _ in range(20):  # a folder tree deeper than PATH_MAX
        os.mkdir("d" * 250, dir_fd=fd)
        sub = os.open("d" * 250, os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = sub
    os.close(fd)
    run = scan(tmp_path, key_path, "in")
    run.assert_clean()
    assert len(run.rows) == 5 and run.returncode == 1
    errors = [r for r in run.rows if r["status"] == "error"]
    assert len(errors) == 1 and "File name too long" in errors[0]["message"]
    assert sum(r["source"].startswith("in/scans/linked-") for r in run.rows) == 3
    assert "not read: in/anim.gif: not a card image name" in run.stderr
    assert "not read: in/notes.txt" in run.stderr and "2 names in the folders not read" in run.stdout


def test_a_recursive_glob_through_link_loops_lists_each_file_once(tmp_path, key_path, card_bytes):
    deep = tmp_path / "root" / "a" / "b"
    write(deep, card_bytes, 1)
    (deep / "up").symlink_to(tmp_path / "root")
    (tmp_path / "root" / "a" / "back").symlink_to(tmp_path / "root" / "a")
    (tmp_path / "root" / "side").symlink_to(deep)
    run = scan(tmp_path, key_path, "root/**/*.jpg", timeout=30)
    run.assert_clean()
    assert [r["source"] for r in run.rows] == ["root/a/b/card-0.jpg"] and run.returncode == 0


def test_a_rerun_with_the_absolute_path_counts_no_card_twice(tmp_path, key_path, card_bytes):
    write(tmp_path / "in", card_bytes, 3)
    first = scan(tmp_path, key_path, "in")
    again = scan(tmp_path, key_path, str(tmp_path / "in"), "./in/card-0.jpg", out="again.csv")
    again.assert_clean()
    assert "scanned 3 pages" in again.stdout and "read 0, copies 0" in again.stdout
    assert again.rows == first.rows and not any("duplicate_page" in r["flags"] for r in again.rows)
    export = run_omr("export", "--db", "r.sqlite", "--out", "all.csv", cwd=tmp_path, out=tmp_path / "all.csv")
    assert len(export.rows) == 3


def _pdf_page(path: Path, width_pt: float, height_pt: float) -> None:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument.new()
    pdf.new_page(width_pt, height_pt)
    pdf.save(path)
    pdf.close()


def _tiff_header(width: int, height: int) -> bytes:
    """A little-endian TIFF claiming ``width`` x ``height`` 8-bit gray, one tiny strip."""
    entries = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1),
               (273, 4, 8), (278, 4, height), (279, 4, 16)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", tag, kind, 1, value)
                                                     for tag, kind, value in entries) + b"\0\0\0\0"
    return b"II*\x00" + struct.pack("<I", 24) + b"\0" * 16 + ifd


@pytest.mark.parametrize("name", ["page-5m.pdf", "page-30000pt.pdf", "png-60k.png", "jpeg-60k.jpg",
                                  "tiff-60k.tif"])
def test_a_raster_too_big_is_an_error_row_in_bounded_memory(tmp_path, key_path, name):
    path = tmp_path / name
    if name == "page-5m.pdf":
        _pdf_page(path, 14173, 14173)
    elif name == "page-30000pt.pdf":
        _pdf_page(path, 30000, 30000)
    elif name == "png-60k.png":
        path.write_bytes(_png_header(60_000, 60_000))
    elif name == "jpeg-60k.jpg":
        path.write_bytes(_jpeg_claiming(60_000, 60_000, tmp_path))
    else:
        path.write_bytes(_tiff_header(60_000, 60_000))
    run = scan(tmp_path, key_path, name, timeout=30)
    run.assert_clean()
    (row,) = run.rows
    assert row["status"] == "error" and row["flags"] == "image_unreadable", row
    assert re.search(r"\d+ x \d+ pixels.* million\) is more than a card scan has", row["message"])
    assert run.peak_rss_mb < PEAK_RSS_MB, f"{name}: peak RSS {run.peak_rss_mb:.0f} MB"


def test_error_pages_do_not_pile_up_memory(tmp_path, key_path):
    for i in range(6):  # pages that fail late, after the marker search has made its images
        noise = np.random.default_rng(i).integers(0, 256, (3508, 2480), dtype=np.uint8)
        Image.fromarray(noise).save(tmp_path / f"noise-{i}.png")
    run = scan(tmp_path, key_path, *(f"noise-{i}.png" for i in range(6)), timeout=60)
    run.assert_clean()
    assert len(run.rows) == 6 and all(r["status"] == "error" for r in run.rows)
    assert run.peak_rss_mb < PEAK_RSS_MB, f"peak RSS {run.peak_rss_mb:.0f} MB"


def test_a_tiff_of_two_thousand_tiny_pages_is_read_in_time(tmp_path, key_path):
    frames = [Image.new("L", (4, 4), 255) for _ in range(2000)]
    frames[0].save(tmp_path / "many.tif", save_all=True, append_images=frames[1:])
    run = scan(tmp_path, key_path, "many.tif", timeout=60)
    run.assert_clean()
    assert len(run.rows) == 2000 and {r["page"] for r in run.rows} == {str(p) for p in range(1, 2001)}


def test_pdfs_without_pages_or_broken_say_so(tmp_path, key_path):
    (tmp_path / "empty.pdf").write_bytes(_pdf_without_pages())
    (tmp_path / "cut.pdf").write_bytes(b"%PDF-1.4\n garbage")
    run = scan(tmp_path, key_path, "empty.pdf", "cut.pdf")
    run.assert_clean()
    assert len(run.rows) == 2 and all(r["status"] == "error" for r in run.rows)
    assert all("Success" not in r["message"] and "has no pages" in r["message"] for r in run.rows)


def test_a_semicolon_in_a_name_cannot_add_flags_to_a_copys_row(tmp_path, key_path, card_bytes):
    (tmp_path / "a;ok;registration_doubtful:x.jpg").write_bytes(card_bytes[0])
    (tmp_path / "b.jpg").write_bytes(card_bytes[0])
    run = scan(tmp_path, key_path, ".")
    run.assert_clean()
    copy = by_name(run.rows)["b.jpg"]
    assert copy["flags"].split(";") == ["duplicate_page:./a%3Bok%3Bregistration_doubtful:x.jpg"]


def test_export_of_a_run_keeps_the_pages_a_later_run_saw(tmp_path, key_path, card_bytes):
    write(tmp_path / "a", card_bytes, 2)
    write(tmp_path / "b", card_bytes[2:], 2)
    scan(tmp_path, key_path, "a")
    scan(tmp_path, key_path, "a", "b", out="r2.csv")
    run1 = run_omr("export", "--db", "r.sqlite", "--run", 1, "--out", "run1.csv", cwd=tmp_path,
                   out=tmp_path / "run1.csv")
    assert sorted(r["source"] for r in run1.rows) == ["a/card-0.jpg", "a/card-1.jpg"]
    missing = run_omr("export", "--db", "r.sqlite", "--run", 99, "--out", "run99.csv", cwd=tmp_path)
    missing.assert_clean()
    assert missing.returncode == 2 and "has no run 99 (runs 1 to 2)" in missing.stderr
    assert not (tmp_path / "run99.csv").exists()


def test_the_progress_bar_never_goes_backwards(tmp_path, key_path, card_bytes):
    write(tmp_path / "in", card_bytes, 2)
    frames = [Image.new("L", (8, 8), 255) for _ in range(8)]
    frames[0].save(tmp_path / "in" / "z-many.tif", save_all=True, append_images=frames[1:])
    run = scan(tmp_path, key_path, "in", extra=("--progress",))
    run.assert_clean()
    shown = [int(p) for p in re.findall(r"(\d+)%\|", run.stderr)]
    assert shown and shown[-1] == 100 and shown == sorted(shown), shown
