"""Synthetic scans: reproducible, truth positions on the drawn bubbles, marks in range, files."""

from __future__ import annotations

import json
from dataclasses import replace

import cv2
import numpy as np
import pytest
from PIL import Image

from omr.decode import is_valid_code
from omr.layout import load_layout
from omr.synth import (
    BoxMark,
    CardSpec,
    MarkSpec,
    ScanDamage,
    acceptable_reads,
    random_card_spec,
    random_damage,
    synth_card,
    write_dataset,
)

LAYOUT = load_layout()
Q = LAYOUT.answers.questions
N_OPT = len(LAYOUT.answers.options)


def _blank_spec(answers: list[MarkSpec] | None = None, **kw) -> CardSpec:
    return CardSpec(
        code_number="123456782",
        answers=tuple(answers or [MarkSpec("blank")] * Q),
        code_grid=tuple(MarkSpec("blank") for _ in range(LAYOUT.code_grid.columns)),
        version=MarkSpec("blank"),
        **kw,
    )


def _gray(img: np.ndarray) -> np.ndarray:
    return img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)


def _sample_mm(img: np.ndarray, mm_to_px: np.ndarray, pts_mm: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``img`` at (..., 2) page-mm points mapped by the truth homography."""
    flat = pts_mm.reshape(-1, 2)
    q = np.concatenate([flat, np.ones((len(flat), 1))], axis=1) @ mm_to_px.T
    px = (q[:, :2] / q[:, 2:]).astype(np.float32)
    n = len(px)
    pad = np.zeros((-n % 1024, 2), np.float32)  # remap maps must stay under 32767 rows
    maps = np.concatenate([px, pad]).reshape(-1, 1024, 2)
    out = cv2.remap(_gray(img), maps[..., 0], maps[..., 1], cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(-1)[:n].reshape(pts_mm.shape[:-1]).astype(np.float64)


def _centroid_offsets(img, mm_to_px, centres_mm, half_w, half_h, keep) -> np.ndarray:
    """(N, 2) mm offset of the darkness centroid of each window from its nominal centre.

    Each window is sampled on a 0.1 mm grid in page millimetres through ``mm_to_px``;
    ``keep(gx, gy)`` selects the grid points that count (e.g. an outline band).  A wrong
    truth homography shows up directly as an off-centre centroid.
    """
    gx, gy = np.meshgrid(np.arange(-half_w, half_w + 1e-9, 0.1),
                         np.arange(-half_h, half_h + 1e-9, 0.1))
    grid = np.stack([gx, gy], axis=-1)
    vals = _sample_mm(img, mm_to_px, centres_mm[:, None, None, :] + grid[None])
    paper = np.percentile(vals, 95, axis=(1, 2), keepdims=True)
    w = np.clip(paper - vals, 0, None) * keep(gx, gy)[None]
    return np.stack([(w * gx).sum((1, 2)) / w.sum((1, 2)), (w * gy).sum((1, 2)) / w.sum((1, 2))],
                    axis=1)


GEOMETRIES = {
    "undamaged": ScanDamage(dpi=300),
    "skewed_dark_bed": ScanDamage(dpi=300, rotation_deg=7.0, bed="dark", offset_mm=(6.0, 3.0),
                                  margin_mm=(2.0, 4.0), perspective=0.004),
    "upside_down_150dpi": ScanDamage(dpi=150, rotation_deg=-3.0, upside_down=True,
                                     offset_mm=(3.0, 9.0), blur_sigma_mm=0.04),
    "quarter_turn": ScanDamage(dpi=200, quarter_turn=90, rotation_deg=1.5, bed="dark"),
}


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_truth_positions_land_on_the_drawn_bubbles_and_markers(name: str) -> None:
    damage = GEOMETRIES[name]
    card = synth_card(LAYOUT, _blank_spec(), damage, seed=3)
    t = card.truth
    h = np.asarray(t["mm_to_px"])
    assert card.image.shape[1::-1] == tuple(t["image_size"])
    # truth pixel positions are the homography applied to the layout
    q = np.concatenate([LAYOUT.box_centers(), np.ones((len(LAYOUT.box_centers()), 1))], 1) @ h.T
    assert np.allclose(q[:, :2] / q[:, 2:], t["box_centers_px"], atol=1e-3)

    b = LAYOUT.bubble
    inner_w = b.width_mm / 2 - b.outline_width_mm - 0.3
    inner_h = b.height_mm / 2 - b.outline_width_mm - 0.3

    def band(gx, gy):  # the outline, not the letter inside
        return ((np.abs(gx) > inner_w) | (np.abs(gy) > inner_h)).astype(float)

    some = LAYOUT.box_centers()[::3]  # a third of the boxes, spread over the page
    off = _centroid_offsets(card.image, h, some, b.width_mm / 2 + 0.4, b.height_mm / 2 + 0.4, band)
    assert np.abs(off).max() < 0.05, np.abs(off).max(axis=0)

    m = LAYOUT.markers
    off = _centroid_offsets(card.image, h, m.centers(), m.side_mm / 2 + 1.0, m.side_mm / 2 + 1.0,
                            lambda gx, gy: np.ones_like(gx))
    assert np.abs(off).max() < 0.05, off
    # the hole is where the truth puts the top-left marker
    centre = _sample_mm(card.image, h, m.centers())
    assert centre[0] > 150 and (centre[1:] < 100).all()


def test_undamaged_truth_is_the_render_convention() -> None:
    card = synth_card(LAYOUT, _blank_spec(), ScanDamage(dpi=300), seed=1)
    expected = LAYOUT.box_centers() * 300 / 25.4 - 0.5
    assert np.allclose(card.truth["box_centers_px"], expected, atol=1e-3)
    assert card.truth["rotation_deg"] == 0
    assert card.image.shape == (3508, 2480)


def test_upside_down_puts_the_hole_marker_bottom_right() -> None:
    card = synth_card(LAYOUT, _blank_spec(), ScanDamage(dpi=100, upside_down=True), seed=1)
    (x, y), w, h = card.truth["marker_centers_px"][0], *card.truth["image_size"]
    assert x > 0.9 * w and y > 0.9 * h
    assert card.truth["rotation_deg"] == 180


def test_same_seed_same_card_other_seed_other_card() -> None:
    def make(seed: int):
        rng = np.random.default_rng(seed)
        spec = random_card_spec(LAYOUT, rng)
        dmg = random_damage(rng, "heavy", dpi=(100.0,))
        return synth_card(LAYOUT, spec, dmg, seed=seed)

    a, b, c = make(11), make(11), make(12)
    assert np.array_equal(a.image, b.image)
    assert json.dumps(a.truth) == json.dumps(b.truth)
    assert a.truth["acceptable"] != c.truth["acceptable"]


STYLE_CASES = {
    # style: (gray range to draw, mean gray of the read area, share of pixels < 120)
    "fill": ((40, 120), (0, 150), (0.3, 1.0)),
    "x": ((15, 70), (120, 225), (0.08, 0.7)),
    "pencil_x": ((40, 110), (120, 225), (0.08, 0.7)),
    "half": ((40, 110), (90, 215), (0.12, 0.75)),
    "erased": ((195, 235), (165, 238), (0.0, 0.01)),
    "faint": ((150, 200), (210, 250), (0.0, 0.08)),
}


@pytest.mark.parametrize("style", list(STYLE_CASES))
def test_each_mark_style_darkens_its_box_in_the_intended_range(style: str) -> None:
    (g_lo, g_hi), (m_lo, m_hi), (d_lo, d_hi) = STYLE_CASES[style]
    rng = np.random.default_rng(5)
    answers = [MarkSpec("one", (BoxMark(q % N_OPT, style, float(rng.uniform(g_lo, g_hi)),
                                        float(rng.uniform(0.9, 1.1))),)) for q in range(Q)]
    card = synth_card(LAYOUT, _blank_spec(answers), ScanDamage(dpi=300), seed=5)
    s = 300 / 25.4
    b = LAYOUT.bubble
    centres = np.asarray(card.truth["box_centers_px"])[: Q * N_OPT].reshape(Q, N_OPT, 2)
    hw, hh = b.inner_width_mm / 2 * s, b.inner_height_mm / 2 * s

    def read_area(x: float, y: float) -> np.ndarray:
        return card.image[round(y - hh):round(y + hh), round(x - hw):round(x + hw)].astype(float)

    marked = [read_area(*centres[q, q % N_OPT]) for q in range(Q)]
    blank = [read_area(*centres[q, (q + 2) % N_OPT]) for q in range(Q)]
    means = np.array([a.mean() for a in marked])
    dark = np.array([(a < 120).mean() for a in marked])
    assert m_lo <= means.min() and means.max() <= m_hi, (means.min(), means.max())
    assert d_lo <= dark.min() and dark.max() <= d_hi, (dark.min(), dark.max())
    # untouched boxes keep only the light letter (stray ink never lands in a box)
    assert min(a.mean() for a in blank) > 225 and min(a.min() for a in blank) > 150


def test_darker_pencil_gives_darker_fills() -> None:
    answers = [MarkSpec("one", (BoxMark(0, "fill", 40.0 + 80.0 * (q % 2)),)) for q in range(Q)]
    card = synth_card(LAYOUT, _blank_spec(answers), ScanDamage(dpi=100), seed=2)
    c = np.rint(np.asarray(card.truth["box_centers_px"])[: Q * N_OPT:N_OPT]).astype(int)
    v = card.image[c[:, 1], c[:, 0]].astype(float)
    assert v[0::2].mean() + 30 < v[1::2].mean()


@pytest.mark.parametrize(
    ("marks", "expected"),
    [
        ([], "-"),
        ([BoxMark(1, "fill", 60)], "B"),
        ([BoxMark(4, "x", 30)], "E"),
        ([BoxMark(1, "fill", 60), BoxMark(3, "erased", 220)], "B?"),
        ([BoxMark(2, "half", 60)], "C?"),
        ([BoxMark(0, "erased", 200)], "-?"),
        ([BoxMark(0, "faint", 180)], "-?"),
        ([BoxMark(0, "fill", 60), BoxMark(2, "fill", 60)], "*"),
        ([BoxMark(0, "fill", 60), BoxMark(2, "fill", 60), BoxMark(3, "half", 60)], "*?"),
        ([BoxMark(0, "fill", 60), BoxMark(2, "half", 60)], "*?"),
    ],
)
def test_acceptable_reads(marks: list[BoxMark], expected: str) -> None:
    assert acceptable_reads(marks, "ABCDE") == expected


def test_random_specs_resemble_an_exam() -> None:
    rng = np.random.default_rng(0)
    specs = [random_card_spec(LAYOUT, rng) for _ in range(40)]
    acc = [a for s in specs for a in (m.acceptable("ABCDE") for m in s.answers)]
    n = len(acc)
    single = sum(len(a) == 1 and a.isalpha() for a in acc) / n
    blank = acc.count("-") / n
    multiple = sum(a.startswith("*") for a in acc) / n
    corrections = sum(m.pattern == "correction" for s in specs for m in s.answers) / len(specs)
    assert 0.85 < single < 0.95
    assert 0.02 < blank < 0.07
    assert 0.003 < multiple < 0.03
    assert 2 <= corrections <= 10
    assert all(is_valid_code(s.code_number) for s in specs)


def test_spec_follows_intended_answers_and_version() -> None:
    rng = np.random.default_rng(1)
    answers = "ABCDE" * (Q // 5)
    spec = random_card_spec(LAYOUT, rng, answers=answers, version="B", blank=0, multiple=0,
                            correction=0, half=0, residue=0, faint=0, one_plus_faint=0,
                            multiple_half=0, version_none=0, version_two=0)
    assert "".join(m.acceptable("ABCDE") for m in spec.answers) == answers
    assert spec.version.acceptable("ABCD") == "B"
    with pytest.raises(ValueError, match="unknown mix"):
        random_card_spec(LAYOUT, rng, blanks=0.5)


def test_code_grid_barcode_and_version_truth() -> None:
    rng = np.random.default_rng(2)
    base = dict(grid_empty=0, grid_ambiguous=0, barcode_stroke=0, barcode_smudge=0)
    spec = random_card_spec(LAYOUT, rng, grid_mismatch=1, barcode_covered=0, version_none=1,
                            **base)
    t = synth_card(LAYOUT, spec, ScanDamage(dpi=100), seed=1).truth
    diff = [a != b for a, b in zip(t["grid_code"], t["code_number"], strict=True)]
    assert sum(diff) == 1 and not is_valid_code(t["grid_code"])
    assert t["barcode_readable"] and t["version"] is None
    assert t["expected_flags"] == ["code_mismatch", "version_missing"]

    spec = random_card_spec(LAYOUT, rng, grid_mismatch=0, barcode_covered=1, version_none=0,
                            version_two=1, **{**base, "grid_empty": 1})
    t = synth_card(LAYOUT, spec, ScanDamage(dpi=100), seed=1).truth
    assert t["grid_code"] is None and not t["barcode_readable"] and t["version"] == "*"
    assert t["expected_flags"] == ["barcode_unreadable", "code_unreadable", "version_multiple"]


@pytest.mark.parametrize(("kind", "readable"), [("none", True), ("covered", False)])
def test_barcode_truth_matches_a_decoder(kind: str, readable: bool) -> None:
    from pyzbar import pyzbar

    rng = np.random.default_rng(4)
    spec = replace(random_card_spec(LAYOUT, rng), barcode_damage=kind)
    dmg = random_damage(rng, "mild", dpi=(200.0,), p_upside_down=0.0)
    card = synth_card(LAYOUT, spec, dmg, seed=4)
    assert card.truth["barcode_readable"] is readable
    # cut the barcode box out through the truth homography, as a reader would
    x0, y0, x1, y1 = LAYOUT.barcode.box_mm
    scale = 10.0  # px per mm in the cut-out
    gx, gy = np.meshgrid(x0 + (np.arange(round((x1 - x0) * scale)) + 0.5) / scale,
                         y0 + (np.arange(round((y1 - y0) * scale)) + 0.5) / scale)
    crop = _sample_mm(card.image, np.asarray(card.truth["mm_to_px"]), np.stack([gx, gy], -1))
    found = [d.data.decode() for d in pyzbar.decode(crop.astype(np.uint8))]
    assert (spec.code_number in found) is readable


def test_scanner_modes() -> None:
    spec = _blank_spec()
    bitonal = synth_card(LAYOUT, spec, ScanDamage(dpi=100, bitonal=True, noise_sigma=5), seed=1)
    assert set(np.unique(bitonal.image)) <= {0, 255}
    color = synth_card(LAYOUT, spec, ScanDamage(dpi=100, color=True, jpeg_quality=80), seed=1)
    assert color.image.ndim == 3 and color.encoded is not None
    b, g, r = (color.image[..., i].astype(float).mean() for i in range(3))
    assert b < g < r  # warm paper tint
    with pytest.raises(ValueError, match="quarter_turn"):
        ScanDamage(quarter_turn=180)
    with pytest.raises(ValueError, match="preset"):
        random_damage(np.random.default_rng(0), "medium")


def test_write_dataset_formats_pages_and_truth(tmp_path) -> None:
    import pypdfium2 as pdfium

    files = write_dataset(tmp_path, 8, seed=3, formats=("jpg", "png", "tiff", "pdf"),
                          damage="mild", dpi=100, pages_per_file=3)
    assert [f.suffix for f in files] == [".jpg", ".png", ".tif", ".pdf"]
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert [(t["source"], t["page"]) for t in truth] == [
        ("card-0001.jpg", 1), ("card-0002.png", 1),
        ("card-0003.tif", 1), ("card-0003.tif", 2), ("card-0003.tif", 3),
        ("card-0004.pdf", 1), ("card-0004.pdf", 2), ("card-0004.pdf", 3),
    ]  # fmt: skip
    sizes = {(t["source"], t["page"]): tuple(t["image_size"]) for t in truth}
    assert cv2.imread(str(files[0]), cv2.IMREAD_UNCHANGED).shape[1::-1] == sizes[files[0].name, 1]
    with Image.open(files[2]) as tif:
        assert tif.n_frames == 3
        for i in range(3):
            tif.seek(i)
            assert tif.size == sizes[files[2].name, i + 1]
    pdf = pdfium.PdfDocument(str(files[3]))
    try:
        assert len(pdf) == 3
        for i in range(3):
            w_pt, h_pt = pdf[i].get_size()
            w_px, h_px = sizes[files[3].name, i + 1]
            assert abs(w_pt / 72 * 100 - w_px) < 0.5 and abs(h_pt / 72 * 100 - h_px) < 0.5
    finally:
        pdf.close()
    # reproducible: same seed, same bytes
    again = write_dataset(tmp_path / "again", 2, seed=3, formats=("jpg", "png"), damage="mild",
                          dpi=100)
    assert again[0].read_bytes() == files[0].read_bytes()


def test_write_dataset_rejects_bad_arguments(tmp_path) -> None:
    with pytest.raises(ValueError, match="formats"):
        write_dataset(tmp_path, 1, seed=0, formats=("bmp",))
    with pytest.raises(ValueError, match="preset"):
        write_dataset(tmp_path, 1, seed=0, damage="medium")


def test_other_layouts_synthesise_too() -> None:
    from omr.layout import CardLayout

    data = json.loads(json.dumps(_layout_dict()))
    data["answers"].update(questions=120, options="ABCD", blocks=4, rows_per_block=30)
    lay = CardLayout.from_dict(data, source="<120 questions>")
    rng = np.random.default_rng(0)
    card = synth_card(lay, random_card_spec(lay, rng), ScanDamage(dpi=100, rotation_deg=2), seed=0)
    assert len(card.truth["acceptable"]) == 120
    assert len(card.truth["box_centers_px"]) == 120 * 4 + 90 + 4
    assert all(set(a) <= set("ABCD-*?") for a in card.truth["acceptable"])


def _layout_dict() -> dict:
    from importlib import resources

    text = resources.files("omr.layouts").joinpath("lek-ldek-v1.json").read_text("utf-8")
    return json.loads(text)


# -- candidates of two 100-question cards ------------------------------------------------


def test_candidate_plan_shuffles_parts_and_makes_every_anomaly() -> None:
    from omr.synth import candidate_plan

    cem = load_layout("cem-100")
    plan = candidate_plan(cem, 400, seed=3)
    assert len(plan.pages) == 400
    kinds = {p.kind for p in plan.pages}
    assert kinds == {"complete", "missing", "duplicate", "versions"}
    by_candidate: dict[int, list] = {}
    for p in plan.pages:
        by_candidate.setdefault(p.candidate, []).append(p)
    # same code number and card count per candidate as its kind says (the last ones may be cut)
    for pages in by_candidate.values():
        assert len({p.code_number for p in pages}) == 1 and is_valid_code(pages[0].code_number)
        parts = sorted(p.part for p in pages)
        if pages[0].kind == "duplicate" and len(pages) == 3:
            assert len(set(parts)) == 2
        if pages[0].kind == "versions" and len(pages) == 2:
            assert len({p.version for p in pages}) == 2
        if pages[0].kind == "missing":
            assert len(pages) == 1
    assert [p.candidate for p in plan.pages[:20]] != sorted(p.candidate for p in plan.pages[:20])
    assert candidate_plan(cem, 400, seed=3) == plan
    with pytest.raises(ValueError, match="has no parts"):
        candidate_plan(load_layout(), 4, seed=1)


def test_candidate_truth_from_the_pages_written(tmp_path) -> None:
    from omr.synth import candidate_truth

    cem = load_layout("cem-100")
    page = {"code_number": "123456782", "version": "A", "acceptable": ["A"] * 100}
    truths = [
        {**page, "source": "b.jpg", "page": 1, "part": 2, "acceptable": ["B"] * 100},
        {**page, "source": "a.jpg", "page": 1, "part": 1},
        {**page, "code_number": "000000000", "source": "c.jpg", "page": 1, "part": 1},
        {**page, "code_number": "000000000", "source": "d.jpg", "page": 2, "part": 1, "version": "B"},
    ]
    got = candidate_truth(cem, truths)
    assert [(c["code_number"], c["expected_flags"], c["version"]) for c in got] == [
        ("000000000", ["part_missing:2", "part_duplicate:1", "version_mismatch"], None),
        ("123456782", [], "A")]
    assert got[1]["acceptable"] == ["A"] * 100 + ["B"] * 100 and got[0]["acceptable"] is None
    assert got[1]["pages"] == [["a.jpg", 1, 1], ["b.jpg", 1, 2]]


def test_write_dataset_of_a_parts_layout_writes_candidates(tmp_path) -> None:
    cem = load_layout("cem-100")
    write_dataset(tmp_path, 5, seed=2, layout=cem, damage="none", dpi=100)
    pages = json.loads((tmp_path / "truth.json").read_text())
    candidates = json.loads((tmp_path / "candidates.json").read_text())
    assert sorted(p["part"] for p in pages) == sorted(p[2] for c in candidates for p in c["pages"])
    assert {p["code_number"] for p in pages} == {c["code_number"] for c in candidates}
    assert all(len(p["acceptable"]) == 100 for p in pages)
    assert not (tmp_path / "other").exists()
    write_dataset(tmp_path / "other", 2, seed=2, damage="none", dpi=100)
    assert not (tmp_path / "other" / "candidates.json").exists()
