"""Hypothesis strategies: random answer keys (as JSON dicts) and cohorts of cards."""

from __future__ import annotations

from hypothesis import strategies as st

#: option letters to draw from (not '-', '*', '?')
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdxyz0123456789"


@st.composite
def key_dicts(draw: st.DrawFn, max_questions: int = 30) -> dict:
    """A valid spec §4 key: 1-3 versions with permutations, annulments, alternatives, domains."""
    options = "".join(draw(st.lists(st.sampled_from(LETTERS), min_size=1, max_size=7, unique=True)))
    # 32..36 questions reach max_points 32, where percentages end in an exact half (x.xx5)
    q = draw(st.integers(1, max_questions) | st.integers(32, 36) if max_questions >= 30
             else st.integers(1, max_questions))
    names = draw(st.lists(st.sampled_from("ABCD"), min_size=1, max_size=3, unique=True))
    versions = {}
    for i, name in enumerate(names):
        entry: dict = {"key": "".join(draw(st.lists(st.sampled_from(options), min_size=q, max_size=q)))}
        if i or draw(st.booleans()):
            entry["order"] = draw(st.permutations(range(1, q + 1)))
        versions[name] = entry
    masters = st.integers(1, q)
    annulled = draw(st.lists(masters, unique=True, max_size=q - 1))  # a key annulling all is refused
    letters = st.lists(st.sampled_from(options), min_size=1, unique=True).map("".join)
    accepted = draw(st.dictionaries(masters.map(str), letters, max_size=4))
    key = {
        "questions": q,
        "options": options,
        "versions": versions,
        "annulled": annulled,
        "accepted": accepted,
        "annulled_policy": draw(st.sampled_from(["exclude", "credit"])),
        "pass_percent": draw(st.integers(0, 100)),
    }
    if draw(st.booleans()):  # fields of medicine: a random part of the questions in 1-4 groups
        n = draw(st.integers(1, 4))
        groups: list[list[int]] = [[] for _ in range(n)]
        for m in range(1, q + 1):
            g = draw(st.integers(-1, n - 1))
            if g >= 0:
                groups[g].append(m)
        key["domains"] = [{"name": f"field {i}", "questions": g} for i, g in enumerate(groups)]
    return key


@st.composite
def cohorts(draw: st.DrawFn, key: dict, max_cards: int = 12) -> tuple[list[str], list[str]]:
    """Cards for ``key``: responses (options, '-', '*', '?') and each card's version."""
    alphabet = key["options"] + "-*?"
    q = key["questions"]
    n = draw(st.integers(0, max_cards))
    responses = [
        "".join(draw(st.lists(st.sampled_from(alphabet), min_size=q, max_size=q))) for _ in range(n)
    ]
    versions = [draw(st.sampled_from(sorted(key["versions"]))) for _ in range(n)]
    return responses, versions
