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
