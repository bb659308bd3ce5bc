"""A plain-Python reference scorer, written straight from spec §4–5 with `Fraction`.

It reads the key *dict* (not `AnswerKey`) so it shares no code with `scoring`: a
property test that compares the two checks the key loader as well as the core.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from math import floor

REGULATION = {
    "LEK": (39, 29, 27, 26, 14, 20, 20, 10, 7, 8),
    "LDEK": (46, 29, 25, 25, 20, 20, 10, 10, 7, 8),
}


@dataclass(frozen=True)
class RefScore:
    correct: int
    max_points: int
    percent: str  # "56.06"
    passed: bool
    domains: tuple[int, ...]


def _domain_of(key: dict) -> tuple[dict[int, int], int]:
    """master number -> domain index, and the number of domains."""
    q = key["questions"]
    raw = key.get("domains")
    if raw is None:
        counts = REGULATION.get(key.get("exam", "").upper())
        if counts is None:
            return {}, 0
        raw = [{"name": str(i), "questions": n} for i, n in enumerate(counts)]
    items = list(raw.items()) if isinstance(raw, dict) else [(d["name"], d["questions"]) for d in raw]
    out: dict[int, int] = {}
    start = 1
    for d, (_, qs) in enumerate(items):
        if isinstance(qs, int):
            for m in range(start, start + qs):
                out[m] = d
            start += qs
        else:
            for m in qs:
                out[m] = d
    assert all(1 <= m <= q for m in out)
    return out, len(items)


def reference_score(key: dict, responses: str, version: str) -> RefScore:
    """Score one card exactly as the spec words it."""
    q = key["questions"]
    versions = key["versions"]
    if version not in versions and len(versions) == 1:
        version = next(iter(versions))
    v = versions[version]
    order = v.get("order") or list(range(1, q + 1))
    annulled = set(key.get("annulled", []))
    accepted = {int(m): set(letters) for m, letters in key.get("accepted", {}).items()}
    credit = key.get("annulled_policy", "exclude") == "credit"
    domain_of, n_domains = _domain_of(key)
    domains = [0] * n_domains
    correct = 0
    for p in range(q):
        master = order[p]
        if master in annulled:
            point = credit
        else:
            point = responses[p] == v["key"][p] or responses[p] in accepted.get(master, set())
        if point:
            correct += 1
            if master in domain_of:
                domains[domain_of[master]] += 1
    max_points = q if credit else q - len(annulled)
    if max_points == 0:
        return RefScore(correct, 0, "0.00", False, tuple(domains))
    percent = Fraction(100 * correct, max_points)
    hundredths = floor(percent * 100 + Fraction(1, 2))  # round half up
    passed = percent >= key["pass_percent"]
    text = f"{hundredths // 100}.{hundredths % 100:02d}"
    return RefScore(correct, max_points, text, passed, tuple(domains))
