"""Small, fast card files for the pipeline / store / batch tests.

Cards are rendered at low DPI with solid fills (`reader_helpers.marked_card`): they
read in ~50 ms and carry a known code number and answers, so the batch tests can
run dozens of real pages in seconds.  (The realistic damaged cards are `omr.synth`'s;
the throughput bench uses those.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import cv2
import numpy as np

from omr.decode import luhn_check_digit
from omr.layout import CardLayout
from scoring.results import ResultRow
from tests.omr.reader_helpers import marked_card, random_answers


def code_number(i: int) -> str:
    """A valid 9-digit code number, different for every ``i``."""
    body = f"{10000000 + 7919 * i:08d}"[-8:]
    return body + luhn_check_digit(body)


def write_cards(
    folder: Path,
    n: int,
    layout: CardLayout,
    *,
    seed: int = 0,
    dpi: float = 100,
    suffix: str = ".jpg",
    codes: Sequence[str] | None = None,
) -> list[Path]:
    """Write ``n`` filled cards as ``card-XXX{suffix}``; return their paths (sorted)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        code = codes[i] if codes is not None else code_number(seed * 1000 + i)
        img = marked_card(layout, random_answers(layout, seed * 1000 + i), code=code, dpi=dpi)
        path = folder / f"card-{i:03d}{suffix}"
        params = [cv2.IMWRITE_JPEG_QUALITY, 90] if suffix in (".jpg", ".jpeg") else []
        assert cv2.imwrite(str(path), img, params)
        paths.append(path)
    return paths


def stub_score(rows: Sequence[ResultRow]) -> list[ResultRow]:
    """Stand-in scorer for these tests only: one point per 'A', out of the row's length."""
    out = []
    for row in rows:
        if row.status == "error":
            out.append(row)
            continue
        correct, max_points = row.responses.count("A"), max(1, len(row.responses))
        percent = (Decimal(100 * correct) / max_points).quantize(Decimal("0.01"), ROUND_HALF_UP)
        out.append(replace(row, correct=correct, max_points=max_points, percent=percent,
                           passed=correct * 100 >= 56 * max_points))
    return out


def blank_page(path: Path, size: tuple[int, int] = (1169, 827)) -> Path:
    """A white page (no card on it)."""
    assert cv2.imwrite(str(path), np.full(size, 255, np.uint8))
    return path


def write_key(folder: Path) -> Path:
    """A valid LEK key (one version, ``ABCDE`` repeated) as ``folder/key.json``."""
    import json

    path = folder / "key.json"
    path.write_text(json.dumps({"exam": "LEK", "session": "2026-09", "questions": 200,
                                "versions": {"A": {"key": "ABCDE" * 40}}, "pass_percent": 56}))
    return path
