"""Plain-Python references for the item analysis and the change report, card by card.

Written from the definitions in `scoring.items` / `scoring.changes` docstrings, sharing
no code with them: they read the key *dict* and the response strings.
"""

from __future__ import annotations

import math
from fractions import Fraction

from tests.scoring.reference import reference_score


def _master_answers(key: dict, responses: str, version: str) -> tuple[dict[int, str], dict[int, str]]:
    """master number -> the card's answer, and -> the card version's key letter."""
    versions = key["versions"]
    v = versions[version] if version in versions else next(iter(versions.values()))
    order = v.get("order") or list(range(1, key["questions"] + 1))
    answers = {order[p]: responses[p] for p in range(key["questions"])}
    return answers, {order[p]: v["key"][p] for p in range(key["questions"])}


def _right_letters(key: dict, master: int, own: str) -> set[str]:
    return {own} | set(key.get("accepted", {}).get(str(master), ""))


def _pearson(xs: list[float], ys: list[float]) -> float:
    n = len(xs)
    if n == 0:
        return math.nan
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx == 0 or syy == 0:
        return math.nan
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / math.sqrt(sxx * syy)


def reference_items(key: dict, cards: list[tuple[str, str]], options: str = "ABCDE") -> dict:
    """Per master question: p, p_upper, p_lower, D, r_pb, shares by character, flags; and KR-20."""
    q = key["questions"]
    annulled = set(key.get("annulled", []))
    right: list[dict[int, int]] = []
    marked: list[dict[int, str]] = []
    for responses, version in cards:
        answers, letters = _master_answers(key, responses, version)
        right.append({m: int(answers[m] in _right_letters(key, m, letters[m])) for m in range(1, q + 1)})
        marked.append(answers)
    n = len(cards)
    total = [sum(r[m] for m in range(1, q + 1) if m not in annulled) for r in right]
    g = 0 if n == 0 else max(1, int(Fraction(27 * n, 100) + Fraction(1, 2)))
    ranked = sorted(range(n), key=lambda i: (total[i], i))
    lower, upper = ranked[:g], ranked[n - g :]
    out = {}
    for m in range(1, q + 1):
        xs = [r[m] for r in right]
        rest = [total[i] - (xs[i] if m not in annulled else 0) for i in range(n)]
        shares = {}
        for ch in options + "-*?":
            shares[ch] = sum(1 for a in marked if a[m] == ch) / n
        shares["!"] = sum(1 for a in marked if a[m] not in options + "-*?") / n
        p_up = sum(xs[i] for i in upper) / g
        p_lo = sum(xs[i] for i in lower) / g
        # the letters counted right anywhere (any version's letter, accepted ones)
        rights = set(key.get("accepted", {}).get(str(m), ""))
        for v in key["versions"].values():
            order = v.get("order") or list(range(1, q + 1))
            rights.add(v["key"][order.index(m)])
        flags = []
        if p_up - p_lo < 0:
            flags.append("negative_discrimination")
        up_right = sum(xs[i] for i in upper)
        chosen = {
            letter: sum(1 for i in upper if marked[i][m] == letter)
            for letter in options
            if letter not in rights
        }
        if chosen:
            best = max(chosen.values())
            letter = next(x for x in options if chosen.get(x) == best)
            if best > up_right:
                flags.append(f"top_prefers:{letter}")
        out[m] = {
            "p": sum(xs) / n,
            "p_upper": p_up,
            "p_lower": p_lo,
            "D": p_up - p_lo,
            "r_pb": _pearson([float(x) for x in xs], [float(y) for y in rest]),
            "shares": shares,
            "flags": tuple(flags),
        }
    k = q - len(annulled)
    mean = sum(total) / n
    var = sum((t - mean) ** 2 for t in total) / n
    pq = sum(out[m]["p"] * (1 - out[m]["p"]) for m in range(1, q + 1) if m not in annulled)
    kr20 = k / (k - 1) * (1 - pq / var) if k >= 2 and var > 0 else math.nan
    return {"items": out, "kr20": kr20, "group": g, "mean": mean, "var": var}


def reference_changes(key_from: dict, key_to: dict, cards: list[tuple[str, str]]) -> list[dict]:
    """Every card whose points, percent or pass/fail differ between the two keys, in input order."""
    out = []
    for i, (responses, version) in enumerate(cards):
        a = reference_score(key_from, responses, version)
        b = reference_score(key_to, responses, version)
        if (a.correct, a.percent, a.passed) != (b.correct, b.percent, b.passed):
            out.append(
                {"index": i, "old": (a.correct, a.percent, a.passed), "new": (b.correct, b.percent, b.passed)}
            )
    return out
