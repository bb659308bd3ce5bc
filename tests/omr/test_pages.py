import os
from pathlib import Path

import blake3
import cv2
import numpy as np
import pytest
from PIL import Image

from omr import pages as pages_module
from omr.errors import ImageReadError
from omr.pages import (
    LastFile,
    PageRef,
    count_sources,
    describe_file,
    iter_pages,
    iter_sources,
    load_page,
    to_gray_u8,
)

RNG = np.random.default_rng(7)


def gray_image(h: int = 40, w: int = 30, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w), dtype=np.uint8)


def ref_of(path: Path, page: int = 1, keep: LastFile | None = None) -> PageRef:
    refs = [r for r in iter_pages([str(path)], keep=keep) if r.page == page]
    assert len(refs) == 1
    return refs[0]


# -- enumeration ------------------------------------------------------------------------


def test_iter_sources_walks_folders_sorted_and_filters_by_suffix(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "a").mkdir()
    (tmp_path / ".hidden").mkdir()
    for name in ["b/2.jpg", "b/1.PNG", "a/z.tif", "a/notes.txt", "key.json", ".hidden/x.jpg", "a/.x.jpg",
                 "c.pdf"]:
        (tmp_path / name).write_bytes(b"x")
    got = list(iter_sources([str(tmp_path)]))
    rel = [os.path.relpath(p, tmp_path) for p in got]
    assert rel == ["c.pdf", "a/z.tif", "b/1.PNG", "b/2.jpg"]
    assert count_sources([str(tmp_path)]) == 4


def test_iter_sources_keeps_files_as_given_and_expands_globs(tmp_path):
    for name in ["x1.jpg", "x2.jpg", "y.dat"]:
        (tmp_path / name).write_bytes(b"x")
    pattern = str(tmp_path / "x*.jpg")
    named = str(tmp_path / "y.dat")
    missing = str(tmp_path / "nope.jpg")
    got = list(iter_sources([named, pattern, missing, str(tmp_path / "nothing*.jpg")]))
    assert got == [named, str(tmp_path / "x1.jpg"), str(tmp_path / "x2.jpg"), missing,
                   str(tmp_path / "nothing*.jpg")]


def test_folder_sources_keep_the_folder_as_given(tmp_path, monkeypatch):
    (tmp_path / "scans").mkdir()
    (tmp_path / "scans" / "p.png").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    assert list(iter_sources(["scans/"])) == ["scans/p.png"]
    ref = next(iter_pages(["scans"]))
    assert ref.source == "scans/p.png" and ref.path == str(tmp_path / "scans" / "p.png")


def test_describe_file_hashes_and_sniffs_by_content(tmp_path):
    png = tmp_path / "really-a-png.jpg"
    cv2.imwrite(str(tmp_path / "t.png"), gray_image())
    png.write_bytes((tmp_path / "t.png").read_bytes())
    info = describe_file(str(png))
    assert info.kind == "png" and info.pages == 1 and info.error == ""
    assert info.content_hash == blake3.blake3(png.read_bytes()).hexdigest()
    assert info.size_bytes == png.stat().st_size
    assert describe_file(str(png), LastFile()) == info  # read whole, hashed alike
    missing = describe_file(str(tmp_path / "gone.jpg"))
    assert (missing.content_hash, missing.kind, missing.pages) == ("", "missing", 1)
    assert missing.error


def test_multipage_tiff_and_pdf_counted_without_decoding(tmp_path):
    pages = [Image.fromarray(gray_image(seed=s)) for s in range(3)]
    pages[0].save(tmp_path / "m.tif", save_all=True, append_images=pages[1:])
    pages[0].convert("RGB").save(tmp_path / "m.pdf", save_all=True, append_images=pages[1:2], resolution=72)
    refs = list(iter_pages([str(tmp_path)]))
    assert [(Path(r.source).name, r.page, r.pages, r.kind) for r in refs] == [
        ("m.pdf", 1, 2, "pdf"), ("m.pdf", 2, 2, "pdf"),
        ("m.tif", 1, 3, "tiff"), ("m.tif", 2, 3, "tiff"), ("m.tif", 3, 3, "tiff"),
    ]  # fmt: skip
    assert len({r.content_hash for r in refs}) == 2


def test_a_file_that_cannot_be_counted_is_one_page(tmp_path):
    bad = tmp_path / "broken.pdf"
    bad.write_bytes(b"%PDF-1.4\n garbage")
    refs = list(iter_pages([str(bad)]))
    assert [(r.page, r.pages, r.kind) for r in refs] == [(1, 1, "pdf")]
    with pytest.raises(ImageReadError, match="broken.pdf"):
        load_page(refs[0])


# -- decoding ---------------------------------------------------------------------------


def test_jpeg_and_png_decode_to_gray(tmp_path):
    img = gray_image(60, 50)
    cv2.imwrite(str(tmp_path / "a.png"), img)
    cv2.imwrite(str(tmp_path / "a.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 100])
    png = load_page(ref_of(tmp_path / "a.png"))
    assert png.dtype == np.uint8 and png.shape == (60, 50) and png.flags.c_contiguous
    np.testing.assert_array_equal(png, img)
    jpg = load_page(ref_of(tmp_path / "a.jpg"))
    assert jpg.shape == (60, 50) and np.abs(jpg.astype(int) - img).mean() < 8


def test_colour_is_converted_by_bt601_luma(tmp_path):
    bgr = np.zeros((4, 6, 3), np.uint8)
    bgr[:, :2] = (0, 0, 255)  # red
    bgr[:, 2:4] = (0, 255, 0)  # green
    bgr[:, 4:] = (255, 0, 0)  # blue
    cv2.imwrite(str(tmp_path / "c.png"), bgr)
    Image.fromarray(bgr[..., ::-1].copy()).save(tmp_path / "c.tif")
    expected = [76, 76, 150, 150, 29, 29]
    for name in ("c.png", "c.tif"):
        np.testing.assert_allclose(load_page(ref_of(tmp_path / name))[0], expected, atol=1)


@pytest.mark.parametrize("mode", ["1", "L", "I;16", "RGB", "RGBA", "P"])
def test_tiff_modes(tmp_path, mode):
    base = gray_image(20, 24, seed=3)
    if mode == "1":
        im = Image.fromarray(base > 127)
        expected = np.where(base > 127, 255, 0)
    elif mode == "I;16":
        im = Image.fromarray(base.astype(np.uint16) * 257)
        expected = base
    else:
        im = Image.fromarray(base).convert(mode)
        expected = base
    im.save(tmp_path / "p.tif")
    got = load_page(ref_of(tmp_path / "p.tif"))
    assert got.dtype == np.uint8 and got.shape == (20, 24)
    np.testing.assert_allclose(got.astype(int), expected, atol=1)


def test_sixteen_bit_png_keeps_the_high_byte(tmp_path):
    img16 = (gray_image(10, 12).astype(np.uint16) << 8) | 0xFF
    cv2.imwrite(str(tmp_path / "d.png"), img16)
    np.testing.assert_array_equal(load_page(ref_of(tmp_path / "d.png")), gray_image(10, 12))


def test_multipage_tiff_pages_are_distinct(tmp_path):
    imgs = [gray_image(seed=s) for s in range(3)]
    frames = [Image.fromarray(a) for a in imgs]
    frames[0].save(tmp_path / "m.tiff", save_all=True, append_images=frames[1:], compression="tiff_deflate")
    for page, img in enumerate(imgs, start=1):
        np.testing.assert_array_equal(load_page(ref_of(tmp_path / "m.tiff", page)), img)


def test_pdf_scan_page_is_extracted_at_its_own_resolution(tmp_path):
    imgs = [np.full((300, 200), 40 + 100 * s, np.uint8) for s in range(2)]
    frames = [Image.fromarray(a) for a in imgs]
    frames[0].save(tmp_path / "s.pdf", save_all=True, append_images=frames[1:], resolution=150)
    for page, img in enumerate(imgs, start=1):
        got = load_page(ref_of(tmp_path / "s.pdf", page))
        assert got.shape == (300, 200)
        np.testing.assert_allclose(got.astype(int), img, atol=3)


def test_vector_pdf_page_is_rasterised_at_pdf_dpi(tmp_path):
    content = b"0 g 0 0 36 72 re f"
    pdf = (
        b"%PDF-1.4\n1 0 obj <</Type/Catalog/Pages 2 0 R>> endobj\n"
        b"2 0 obj <</Type/Pages/Kids[3 0 R]/Count 1>> endobj\n"
        b"3 0 obj <</Type/Page/Parent 2 0 R/MediaBox[0 0 72 144]/Contents 4 0 R>> endobj\n"
        + b"4 0 obj <</Length " + str(len(content)).encode() + b">> stream\n" + content
        + b"\nendstream endobj\ntrailer <</Root 1 0 R>>\n%%EOF\n"
    )
    (tmp_path / "v.pdf").write_bytes(pdf)
    got = load_page(ref_of(tmp_path / "v.pdf"), pdf_dpi=100)
    assert got.shape == (200, 100)
    assert got[150, 20] < 30 and got[50, 20] > 225 and got[150, 80] > 225  # lower-left quarter black


def test_unknown_suffix_is_decoded_by_content(tmp_path):
    img = gray_image()
    ok, buf = cv2.imencode(".png", img)
    (tmp_path / "scan.dat").write_bytes(buf.tobytes())
    np.testing.assert_array_equal(load_page(ref_of(tmp_path / "scan.dat")), img)
    bmp = tmp_path / "scan.bmp"
    Image.fromarray(img).save(bmp)
    np.testing.assert_array_equal(load_page(ref_of(bmp)), img)


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("empty.jpg", b"", r"empty file \(0 bytes\)"),
        ("text.jpg", b"hello, not an image\n" * 3, r"not an image .*expected JPEG, PNG, TIFF or PDF"),
        ("cut.png", "png-half", r"cannot decode the PNG"),
        ("cut.jpg", "jpg-half", r"truncated JPEG .*no end-of-image marker.*copy or scan the page again"),
        ("cut.tif", "tif-half", r"cannot decode the TIFF"),
    ],
)
@pytest.mark.parametrize("kept", [False, True], ids=["from-file", "from-kept-bytes"])
def test_unreadable_files_raise_image_read_error_naming_the_file(tmp_path, name, content, match, kept):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        img = gray_image(200, 150)
        if content == "tif-half":
            Image.fromarray(img).save(tmp_path / "full.tif")
            data = (tmp_path / "full.tif").read_bytes()
        else:
            data = cv2.imencode("." + content[:3], img)[1].tobytes()
        path.write_bytes(data[: len(data) // 2])
    keep = LastFile() if kept else None
    with pytest.raises(ImageReadError, match=match) as info:
        load_page(ref_of(path, keep=keep), kept=keep)
    assert name in str(info.value)


def test_jpeg_with_trailing_data_is_read_and_a_nearly_complete_one_is_not(tmp_path):
    img = gray_image(64, 48)
    data = cv2.imencode(".jpg", img)[1].tobytes()
    (tmp_path / "trailer.jpg").write_bytes(data + b"\0vendor trailer" * 200)
    assert load_page(ref_of(tmp_path / "trailer.jpg")).shape == (64, 48)
    (tmp_path / "short.jpg").write_bytes(data[:-40])
    with pytest.raises(ImageReadError, match="short.jpg: truncated JPEG"):
        load_page(ref_of(tmp_path / "short.jpg"))


def test_kept_bytes_decode_like_the_file_and_only_for_the_file_described_last(tmp_path, monkeypatch):
    img = gray_image(64, 48)
    cv2.imwrite(str(tmp_path / "a.png"), img)
    cv2.imwrite(str(tmp_path / "b.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    (tmp_path / "t.jpg").write_bytes(cv2.imencode(".jpg", img)[1].tobytes() + b"\0trailer" * 200)
    keep = LastFile()
    a, b, t = (ref_of(tmp_path / n, keep=keep) for n in ("a.png", "b.jpg", "t.jpg"))
    assert keep.data_for(t) is not None and keep.data_for(a) is None and keep.data_for(b) is None
    np.testing.assert_array_equal(load_page(t, kept=keep), load_page(t))
    np.testing.assert_array_equal(load_page(a, kept=keep), img)  # not held: read from its file
    b = ref_of(tmp_path / "b.jpg", keep=keep)
    np.testing.assert_array_equal(load_page(b, kept=keep), load_page(b))
    # the bytes decoded are the bytes hashed, even if the file changes in between
    cv2.imwrite(str(tmp_path / "b.jpg"), 255 - img)
    np.testing.assert_array_equal(load_page(b, kept=keep), cv2.imdecode(cv2.imencode(
        ".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])[1], cv2.IMREAD_GRAYSCALE))
    # a TIFF is not decoded from memory, so not kept either
    Image.fromarray(img).save(tmp_path / "c.tif")
    tif = ref_of(tmp_path / "c.tif", keep=keep)
    assert keep.data_for(tif) is None
    assert tif.content_hash == blake3.blake3((tmp_path / "c.tif").read_bytes()).hexdigest()
    # a file over the limit is hashed in chunks and not kept
    monkeypatch.setattr(pages_module, "MAX_KEPT_BYTES", 100)
    big = ref_of(tmp_path / "a.png", keep=keep)
    assert big.content_hash == blake3.blake3((tmp_path / "a.png").read_bytes()).hexdigest()
    assert keep.data_for(big) is None and keep.data_for(b) is None
    np.testing.assert_array_equal(load_page(big, kept=keep), img)


def test_missing_file_and_missing_page(tmp_path):
    gone = PageRef(source="gone.jpg", page=1, path=str(tmp_path / "gone.jpg"), content_hash="",
                   kind="missing")
    with pytest.raises(ImageReadError, match=r"gone.jpg: no such file; check the path"):
        load_page(gone)
    cv2.imwrite(str(tmp_path / "one.png"), gray_image())
    ref = ref_of(tmp_path / "one.png")
    two = PageRef(ref.source, 2, ref.path, ref.content_hash, ref.kind, 1)
    with pytest.raises(ImageReadError, match="a single image has one page, page 2 asked for"):
        load_page(two)


def test_to_gray_u8_rules():
    np.testing.assert_array_equal(to_gray_u8(np.array([[True, False]])), [[255, 0]])
    np.testing.assert_array_equal(to_gray_u8(np.array([[0xFFFF, 0x80FF]], np.uint16)), [[255, 128]])
    rgb = np.array([[[255, 0, 0]]], np.uint8)
    assert to_gray_u8(rgb, channel_order="RGB")[0, 0] == 76
    assert to_gray_u8(rgb, channel_order="BGR")[0, 0] == 29
    with pytest.raises(ImageReadError, match=r"unsupported sample type float32"):
        to_gray_u8(np.zeros((2, 2), np.float32))
    with pytest.raises(ImageReadError, match=r"unsupported shape \(2, 2, 5\)"):
        to_gray_u8(np.zeros((2, 2, 5), np.uint8))


# -- hostile inputs (issue 16) ------------------------------------------------------------


def _png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR claiming ``width`` x ``height`` (no pixel data)."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk + b"\x00\x00\x00\x00IEND\xaeB`\x82"


def _jpeg_claiming(width: int, height: int, tmp_path: Path) -> bytes:
    """A small real JPEG whose frame header is edited to claim ``width`` x ``height``,
    after a 3 KiB metadata segment (so the frame header is past the first KiB)."""
    data = cv2.imencode(".jpg", gray_image(16, 16))[1].tobytes()
    app = b"\xff\xe1" + (3002).to_bytes(2, "big") + b"\0" * 3000
    data = data[:2] + app + data[2:]
    sof = data.index(b"\xff\xc0")
    return data[:sof + 5] + height.to_bytes(2, "big") + width.to_bytes(2, "big") + data[sof + 9:]


def test_a_named_pipe_and_a_device_are_error_pages_never_opened_for_reading(tmp_path):
    os.mkfifo(tmp_path / "pipe.jpg")
    (tmp_path / "zero.png").symlink_to("/dev/zero")
    refs = list(iter_pages([str(tmp_path)], keep=LastFile()))
    assert [(Path(r.source).name, r.kind) for r in refs] == [("pipe.jpg", "special"), ("zero.png", "special")]
    with pytest.raises(ImageReadError, match=r"pipe.jpg: is a named pipe \(FIFO\), not an image file"):
        load_page(refs[0])
    with pytest.raises(ImageReadError, match=r"zero.png: is a character device"):
        load_page(refs[1])


def test_a_file_turned_into_a_pipe_after_listing_is_not_opened_blocking(tmp_path):
    path = tmp_path / "late.jpg"
    cv2.imwrite(str(path), gray_image())
    ref = ref_of(path)
    path.unlink()
    os.mkfifo(path)
    with pytest.raises(ImageReadError, match="is a named pipe"):
        load_page(ref)


def test_a_folder_that_cannot_be_listed_is_an_error_page(tmp_path, monkeypatch):
    (tmp_path / "ok").mkdir()
    cv2.imwrite(str(tmp_path / "ok" / "a.png"), gray_image())
    (tmp_path / "locked").mkdir()
    real_scandir = os.scandir

    def scandir(path="."):
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(pages_module.os, "scandir", scandir)
    refs = list(iter_pages([str(tmp_path)]))
    assert [Path(r.source).name for r in refs] == ["locked", "a.png"]
    with pytest.raises(ImageReadError, match=r"locked: cannot list the folder: Permission denied"):
        load_page(refs[0])


def test_a_path_over_the_os_limit_is_an_error_page(tmp_path):
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        for _ in range(20):  # 20 x 250 characters: over PATH_MAX (4096)
            os.mkdir("d" * 250, dir_fd=fd)
            sub = os.open("d" * 250, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = sub
    finally:
        os.close(fd)
    refs = list(iter_pages([str(tmp_path)]))
    assert len(refs) == 1 and len(refs[0].source) > 4096
    with pytest.raises(ImageReadError, match="File name too long"):
        load_page(refs[0])


def test_folder_links_are_followed_once_loops_refused_and_skipped_names_reported(tmp_path):
    (tmp_path / "other").mkdir()
    for name in ("x.jpg", "y.jpg"):
        (tmp_path / "other" / name).write_bytes(b"x")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.png").write_bytes(b"x")
    (tmp_path / "in" / "anim.gif").write_bytes(b"x")
    (tmp_path / "in" / "notes.txt").write_bytes(b"x")
    (tmp_path / "in" / "linked").symlink_to(tmp_path / "other")
    (tmp_path / "in" / "again").symlink_to(tmp_path / "other")
    (tmp_path / "in" / "loop").symlink_to(tmp_path / "in")
    skipped = []
    got = [os.path.relpath(p, tmp_path / "in") for p in iter_sources([str(tmp_path / "in")], skipped.append)]
    assert got == ["a.png", "again/x.jpg", "again/y.jpg"]
    reasons = {os.path.relpath(s.path, tmp_path / "in"): s.reason for s in skipped}
    assert set(reasons) == {"anim.gif", "notes.txt", "linked", "loop"}
    assert "not a card image name" in reasons["anim.gif"]
    assert "the same folder as" in reasons["linked"] and "the same folder as" in reasons["loop"]


def test_recursive_globs_list_each_file_once_through_links_and_loops(tmp_path):
    root = tmp_path / "root"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "card.jpg").write_bytes(b"x")
    (root / "a" / "b" / "up").symlink_to(root)  # a loop
    (root / "a" / "back").symlink_to(root / "a")  # a second loop
    (root / "side").symlink_to(root / "a" / "b")  # a second route
    got = list(iter_sources([str(root / "**" / "*.jpg")]))
    assert got == [str(root / "a" / "b" / "card.jpg")]
    assert list(iter_sources([str(root / "**")])) == [str(root / "a" / "b" / "card.jpg")]


def test_a_relative_recursive_glob_yields_relative_paths(tmp_path, monkeypatch):
    (tmp_path / "s" / "t").mkdir(parents=True)
    (tmp_path / "s" / "t" / "p.png").write_bytes(b"x")
    (tmp_path / "s" / "q.jpg").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    assert list(iter_sources(["**/*.png", "s/**/*.jpg"])) == ["s/t/p.png", "s/q.jpg"]


@pytest.mark.parametrize("kept", [False, True], ids=["from-file", "from-kept-bytes"])
@pytest.mark.parametrize("kind", ["png", "jpeg"])
def test_a_raster_over_the_cap_is_refused_from_its_header(tmp_path, kind, kept, monkeypatch):
    path = tmp_path / f"huge.{kind}"
    path.write_bytes(_png_header(60_000, 60_000) if kind == "png" else _jpeg_claiming(60_000, 60_000, tmp_path))
    monkeypatch.setattr(pages_module.cv2, "imread", lambda *a: pytest.fail("decoded anyway"))
    monkeypatch.setattr(pages_module.cv2, "imdecode", lambda *a: pytest.fail("decoded anyway"))
    keep = LastFile() if kept else None
    with pytest.raises(ImageReadError, match=r"huge.* page 1: 60000 x 60000 pixels \(3600 million\) is more"):
        load_page(ref_of(path, keep=keep), kept=keep)


def test_a_raster_under_the_cap_after_large_metadata_is_read(tmp_path):
    path = tmp_path / "meta.jpg"
    path.write_bytes(_jpeg_claiming(16, 16, tmp_path))
    assert load_page(ref_of(path)).shape == (16, 16)


def test_tiff_and_pdf_pages_over_the_cap_are_refused_before_decoding(tmp_path, monkeypatch):
    monkeypatch.setattr(pages_module, "MAX_PAGE_PIXELS", 100 * 100)
    Image.fromarray(gray_image(120, 100)).save(tmp_path / "big.tif")
    with pytest.raises(ImageReadError, match=r"big.tif page 1: 100 x 120 pixels"):
        load_page(ref_of(tmp_path / "big.tif"))
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument.new()
    pdf.new_page(14173, 14173)  # 5 m square
    pdf.save(tmp_path / "huge.pdf")
    pdf.close()
    monkeypatch.setattr(pages_module, "MAX_PAGE_PIXELS", 80_000_000)
    with pytest.raises(ImageReadError, match=r"huge.pdf page 1: 59054 x 59054 pixels \(a 5000 x 5000 mm page"):
        load_page(ref_of(tmp_path / "huge.pdf"))


def test_a_multipage_tiff_is_read_in_linear_time(tmp_path, monkeypatch):
    from PIL import TiffImagePlugin

    n = 300
    frames = [Image.fromarray(gray_image(8, 8, seed=i)) for i in range(n)]
    frames[0].save(tmp_path / "many.tif", save_all=True, append_images=frames[1:])
    loads = []
    real = TiffImagePlugin.ImageFileDirectory_v2.load
    monkeypatch.setattr(TiffImagePlugin.ImageFileDirectory_v2, "load",
                        lambda self, fp: (loads.append(1), real(self, fp))[1])
    refs = list(iter_pages([str(tmp_path / "many.tif")]))
    got = [load_page(r) for r in refs]
    assert len(got) == n and all(g.shape == (8, 8) for g in got)
    np.testing.assert_array_equal(got[-1], np.asarray(frames[-1]))
    assert len(loads) <= 10 * n  # a few reads per directory (n^2 / 2 = 45,000 before)


def _pdf_without_pages() -> bytes:
    """A well-formed PDF whose page tree is empty (pdfium says "Success" and fails)."""
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"]
    out, offsets = b"%PDF-1.4\n", []
    for i, obj in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + obj + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    return out + f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()


def test_pdf_messages_say_what_is_wrong(tmp_path, monkeypatch):
    import pypdfium2 as pdfium

    (tmp_path / "empty.pdf").write_bytes(_pdf_without_pages())
    with pytest.raises(ImageReadError, match=r"empty.pdf: cannot open the PDF: it is damaged, .* or has no pages") as info:
        load_page(ref_of(tmp_path / "empty.pdf"))
    assert "Success" not in str(info.value)
    (tmp_path / "cut.pdf").write_bytes(b"%PDF-1.4\n garbage")
    with pytest.raises(ImageReadError, match=r"cut.pdf: cannot open the PDF: it is damaged, truncated, not a PDF"):
        load_page(ref_of(tmp_path / "cut.pdf"))

    def locked(path):
        raise pdfium.PdfiumError("Failed to load document (PDFium: Incorrect password error).", err_code=4)

    (tmp_path / "locked.pdf").write_bytes(b"%PDF-1.4\ntrailer << /Encrypt 5 0 R >>\n")
    ref = ref_of(tmp_path / "locked.pdf")
    monkeypatch.setattr(pdfium, "PdfDocument", locked)
    with pytest.raises(ImageReadError, match=r"locked.pdf: cannot open the PDF: it is password-protected") as info:
        load_page(ref)
    assert "complete" not in str(info.value)
