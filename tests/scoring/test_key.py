"""Answer key loading and validation: every broken field is named."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from omr.errors import AnswerKeyError
from scoring import AnswerKey, load_key
from scoring.key import REGULATION_DOMAINS

REPO = Path(__file__).resolve().parents[2]
GOOD = {
    "exam": "LEK",
    "session": "2026-09",
    "questions": 200,
    "versions": {
        "A": {"key": "ABCDE" * 40},
        "B": {"key": "EDCBA" * 40, "order": list(range(200, 0, -1))},
    },
    "annulled": [17, 133],
    "accepted": {"45": "BD"},
    "annulled_policy": "exclude",
    "pass_percent": 56,
}


def edited(**changes: object) -> dict:
    data = copy.deepcopy(GOOD)
    for path, value in changes.items():
        *parents, last = path.split("__")
        node = data
        for part in parents:
            node = node[part]
        if value is ...:
            del node[last]
        else:
            node[last] = value
    return data


def test_a_good_key() -> None:
    key = AnswerKey.from_dict(GOOD, source="k.json")
    assert key.questions == 200 and key.options == "ABCDE"
    assert key.version_names == ("A", "B")
    assert key.version("B").order[:3] == (200, 199, 198)
    assert key.version("A").order == tuple(range(1, 201))
    assert key.annulled == (17, 133)
    assert key.accepted == ((45, "BD"),)
    assert key.max_points == 198
    assert [len(d.questions) for d in key.domains] == [39, 29, 27, 26, 14, 20, 20, 10, 7, 8]
    assert key.domains[-1].questions[-1] == 200


def test_credit_keeps_the_maximum() -> None:
    assert AnswerKey.from_dict(edited(annulled_policy="credit")).max_points == 200


def test_the_sample_key_loads() -> None:
    key = load_key(REPO / "sample_scans" / "key.json")
    assert key.exam == "LEK" and key.version_names == ("A", "B") and key.max_points == 199


def test_regulation_breakdowns_sum_to_200() -> None:
    for exam, fields in REGULATION_DOMAINS.items():
        assert sum(n for _, n in fields) == 200, exam
        assert len(fields) == 10
    assert [n for _, n in REGULATION_DOMAINS["LDEK"]] == [46, 29, 25, 25, 20, 20, 10, 10, 7, 8]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"versions__A__key": "ABC"}, r"versions\.A\.key: 3 letters, but the key has 200 questions"),
        ({"versions__B__key": "F" + "EDCBA" * 39 + "EDCB"},
         r"versions\.B\.key: letter 'F' at card position 1 is not one of the options 'ABCDE'"),
        ({"versions__A__key": "abcde" * 40}, r"versions\.A\.key: letter 'a'"),
        ({"annulled": [0]}, r"annulled\[0\]: 0 is not a question number 1\.\.200"),
        ({"annulled": [17, 201]}, r"annulled\[1\]: 201 is not a question number"),
        ({"annulled": [17, 17]}, r"annulled: 17 listed more than once"),
        ({"annulled": "17"}, r"annulled: expected a list"),
        ({"accepted": {"201": "B"}}, r"accepted\.201: '201' is not a question number 1\.\.200"),
        ({"accepted": {"x": "B"}}, r"accepted\.x: 'x' is not a question number"),
        ({"accepted": {"45": "BF"}}, r"accepted\.45: letter 'F' is not one of the options"),
        ({"accepted": {"45": ""}}, r"accepted\.45: expected a string of accepted letters"),
        ({"versions__B__order": [1] * 200},
         r"versions\.B\.order: not a permutation of 1\.\.200: 1 listed more than once; missing 2, 3"),
        ({"versions__B__order": list(range(0, 200))},
         r"versions\.B\.order: not a permutation of 1\.\.200: 0 outside 1\.\.200; missing 200"),
        ({"versions__B__order": list(range(1, 200))},
         r"versions\.B\.order: 199 entries, but the key has 200"),
        ({"versions__B__order": [float(i) for i in range(1, 201)]}, r"versions\.B\.order: expected a list"),
        ({"versions": {}}, r"versions: expected an object with at least one version"),
        ({"versions__A__answers": "x"}, r"versions\.A\.answers: unknown field; known fields: key, order"),
        ({"anulled": [1]}, r"anulled: unknown field; did you mean 'annulled'\?"),
        ({"annulled_policy": "drop"}, r"annulled_policy: expected 'exclude' or 'credit', got 'drop'"),
        ({"pass_percent": 56.5}, r"pass_percent: expected a whole percentage 0\.\.100, got 56\.5"),
        ({"pass_percent": 101}, r"pass_percent: expected a whole percentage"),
        ({"questions": 0}, r"questions: expected a positive integer, got 0"),
        ({"questions": True}, r"questions: expected a positive integer"),
        ({"exam": 7}, r"exam: expected a string"),
        ({"options": "ABCD"}, r"versions\.A\.key: letter 'E'"),
        ({"options": "AAB"}, r"options: need distinct option letters"),
        ({"options": "AB-"}, r"options: '-' cannot be an option letter"),
    ],
)
def test_broken_keys_name_the_field(changes: dict, message: str) -> None:
    with pytest.raises(AnswerKeyError, match=r"answer key k\.json: " + message):
        AnswerKey.from_dict(edited(**changes), source="k.json")


def test_lek_needs_200_questions_unless_it_brings_its_own_fields() -> None:
    small = edited(questions=5, versions={"A": {"key": "ABCDE"}}, annulled=[], accepted={})
    with pytest.raises(AnswerKeyError, match=r"questions: exam 'LEK' has 200 questions .* this key has 5"):
        AnswerKey.from_dict(small, source="k.json")
    own = AnswerKey.from_dict({**small, "domains": {"first": 2, "rest": 3}})
    assert [(d.name, d.questions) for d in own.domains] == [("first", (1, 2)), ("rest", (3, 4, 5))]


def test_other_exams_without_domains_have_no_breakdown() -> None:
    key = AnswerKey.from_dict({"exam": "PES", "versions": {"A": {"key": "ABCDE" * 24}}})
    assert key.domains == () and key.pass_percent == 60 and key.questions == 120


def test_missing_pass_mark_of_an_unknown_exam() -> None:
    with pytest.raises(AnswerKeyError, match=r"pass_percent: missing, and exam '' has no known pass mark"):
        AnswerKey.from_dict({"versions": {"A": {"key": "AB"}}}, source="k.json")


@pytest.mark.parametrize(
    ("domains", "message"),
    [
        ({"a": 100, "b": 99}, r"domains: counts add up to 199, but the key has 200"),
        ([{"name": "a", "questions": [1, 2]}, {"name": "b", "questions": [2]}],
         r"domains\.b: question 2 is already in domain 'a'"),
        ([{"name": "a", "questions": [0]}], r"domains\.a: 0 is not a question number"),
        ([{"name": "a"}], r"domains\[0\]: expected"),
        ({"a": "x"}, r"domains\.a: expected a count"),
        ([{"name": "", "questions": 200}], r"domains\[0\]\.name: expected a non-empty name"),
        ("all", r"domains: expected a list or an object"),
    ],
)
def test_broken_domains(domains: object, message: str) -> None:
    with pytest.raises(AnswerKeyError, match=message):
        AnswerKey.from_dict(edited(domains=domains), source="k.json")


def test_domains_as_lists_may_leave_questions_out() -> None:
    key = AnswerKey.from_dict(edited(domains=[{"name": "x", "questions": [3, 1]}]))
    assert key.domains[0].questions == (1, 3)


def test_options_from_the_layout_must_match_the_key() -> None:
    with pytest.raises(AnswerKeyError, match=r"options: the key says 'ABCDE' but the card layout has 'ABCD'"):
        AnswerKey.from_dict(edited(options="ABCDE"), source="k.json", options="ABCD")
    four = AnswerKey.from_dict({"versions": {"A": {"key": "ABCD"}}, "pass_percent": 50}, options="ABCD")
    assert four.options == "ABCD"


def test_questions_default_to_the_key_length() -> None:
    assert AnswerKey.from_dict(edited(questions=..., exam="")).questions == 200


def test_unknown_version_lookup_names_the_versions() -> None:
    with pytest.raises(AnswerKeyError, match=r"no version 'C' \(the key has A, B\)"):
        AnswerKey.from_dict(GOOD).version("C")


def test_load_key_file_errors(tmp_path: Path) -> None:
    with pytest.raises(AnswerKeyError, match=r"cannot read answer key .*nope\.json"):
        load_key(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"versions": ', encoding="utf-8")
    with pytest.raises(AnswerKeyError, match=r"bad\.json is not valid JSON: line 1 column 14"):
        load_key(bad)
    latin = tmp_path / "latin.json"
    latin.write_bytes('{"exam": "ł"}'.encode("iso-8859-2"))
    with pytest.raises(AnswerKeyError, match="not UTF-8"):
        load_key(latin)
    arr = tmp_path / "list.json"
    arr.write_text("[]", encoding="utf-8")
    with pytest.raises(AnswerKeyError, match=r"list\.json: expected a JSON object, got list"):
        load_key(arr)
    good = tmp_path / "good.json"
    good.write_text(json.dumps(GOOD), encoding="utf-8")
    assert load_key(good).source == str(good)


def test_keys_are_hashable_and_equal_by_value() -> None:
    assert AnswerKey.from_dict(GOOD) == AnswerKey.from_dict(copy.deepcopy(GOOD))
    assert hash(AnswerKey.from_dict(GOOD)) == hash(AnswerKey.from_dict(copy.deepcopy(GOOD)))


# -- hostile keys (issue 16, item 17): each a clear error naming the field ---------------


@pytest.mark.parametrize(
    ("changes", "labels", "message"),
    [
        ({"versions__X": {"key": "ABCDE" * 40}}, "ABCD",
         r"versions\.X: 'X' is not a version of this card: the card's version labels are A, B, C, D"),
        ({"versions__b": {"key": "ABCDE" * 40}}, "ABCD", r"versions\.b: 'b' is not a version of this card"),
        ({"versions__b": {"key": "ABCDE" * 40}}, None,
         r"versions\.b: 'b' is not a version of this card: a version is one capital letter"),
        ({"versions__AB": {"key": "ABCDE" * 40}}, None, r"versions\.AB: 'AB' is not a version"),
        ({"versions__ A": {"key": "ABCDE" * 40}}, None, r"versions\. A: ' A' is not a version"),
    ],
)
def test_versions_must_be_printed_on_the_card(changes: dict, labels: str | None, message: str) -> None:
    data = copy.deepcopy(GOOD)
    data["versions"].update({k.split("__")[1]: v for k, v in changes.items()})
    with pytest.raises(AnswerKeyError, match=message):
        AnswerKey.from_dict(data, version_labels=labels)


def test_a_layout_with_other_labels_allows_them() -> None:
    data = copy.deepcopy(GOOD)
    data["versions"] = {"X": data["versions"]["A"], "Y": data["versions"]["B"]}
    assert AnswerKey.from_dict(data, version_labels="XYZ").version_names == ("X", "Y")


def test_an_unknown_exam_is_refused_unless_the_key_brings_its_fields() -> None:
    with pytest.raises(AnswerKeyError,
                       match=r"exam: 'LEKK' is not a known exam \(LEK, LDEK, PES\); did you mean 'LEK'\? a key "
                             r"for another exam gives its own 'domains'"):
        AnswerKey.from_dict(edited(exam="LEKK"))
    own = AnswerKey.from_dict(edited(exam="LEKK", domains=[{"name": "all", "questions": 200}]))
    assert own.exam == "LEKK" and [d.name for d in own.domains] == ["all"]
    assert AnswerKey.from_dict(edited(exam="ldek")).domains[0].name == "LDEK field 1"
    assert AnswerKey.from_dict(edited(exam="")).domains == ()


@pytest.mark.parametrize("policy", ["exclude", "credit"])
def test_a_key_annulling_every_question_is_refused(policy: str) -> None:
    with pytest.raises(AnswerKeyError, match=r"annulled: every one of the 200 questions is annulled"):
        AnswerKey.from_dict(edited(annulled=list(range(1, 201)), annulled_policy=policy))
    assert AnswerKey.from_dict(edited(annulled=list(range(1, 200)))).max_points == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"exam": "LEK", "questions": 1' + "0" * 5000 + "}", r"big\.json cannot be read: Exceeds the limit"),
        ('{"exam": "LEK", "versions": ' + "[" * 100_000 + "]" * 100_000 + "}", r"big\.json: nested too deeply"),
    ],
)
def test_huge_numbers_and_deep_nesting_in_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "big.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(AnswerKeyError, match=message):
        load_key(path)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"questions": 10**4000}, r"questions: 200 letters, but|versions\.A\.key: 200 letters, but the key has 1000"),
        ({"pass_percent": 10**4000}, r"pass_percent: expected a whole percentage 0\.\.100, got 1000.{0,30}$"),
        ({"annulled": [10**4000]}, r"annulled\[0\]: 1000.{0,30} is not a question number 1\.\.200$"),
        ({"accepted": {"1" * 5000: "B"}}, r"accepted\.1111.{0,40}: '1111.{0,40} is not a question number"),
        ({"versions__A__order": [[[[[[[[1]]]]]]]] + [1] * 199}, r"versions\.A\.order: expected a list of"),
        ({"annulled_policy": [[[[[[[[[[1]]]]]]]]]]}, r"annulled_policy: expected .*got \[\[\[\[\.\.\.\]\]\]\]$"),
        ({"versions__A": [[[[[[[[[[1]]]]]]]]]]}, r"versions\.A: expected an object .*got \[\[\[\[\.\.\.\]\]\]\]$"),
    ],
)
def test_huge_and_deep_values_give_short_messages(changes: dict, message: str) -> None:
    with pytest.raises(AnswerKeyError, match=message):
        AnswerKey.from_dict(edited(**changes))


class CountingList(list):
    """A list that counts how many elements its methods walk through."""

    visits = 0

    def __iter__(self):  # type: ignore[no-untyped-def]
        for item in super().__iter__():
            CountingList.visits += 1
            yield item

    def count(self, value):  # type: ignore[no-untyped-def]
        CountingList.visits += len(self)
        return super().count(value)

    def index(self, *args):  # type: ignore[no-untyped-def]
        CountingList.visits += len(self)
        return super().index(*args)

    def __contains__(self, value):  # type: ignore[no-untyped-def]
        CountingList.visits += len(self)
        return super().__contains__(value)


@pytest.mark.parametrize("field", ["annulled", "order", "domains"])
def test_duplicate_checks_of_a_large_key_are_linear(field: str) -> None:
    """A 600 KB key took 30 s (quadratic duplicate checks); count the list walks instead
    of timing them: a constant number of passes over each list, whatever its length."""
    n = 50_000
    data: dict = {"questions": n, "versions": {"A": {"key": "A" * n}}, "pass_percent": 50}
    if field == "annulled":
        data["annulled"] = CountingList([*range(1, n - 1), 5])
        message = r"annulled: 5 listed more than once"
    elif field == "order":
        data["versions"]["A"]["order"] = CountingList([*range(1, n), 5])
        message = r"order: not a permutation of 1\.\.50000: 5 listed more than once; missing 50000"
    else:
        data["domains"] = CountingList([*({"name": f"d{i}", "questions": 1} for i in range(n - 1)),
                                        {"name": "d7", "questions": 1}])
        message = r"domains: names repeat: \['d7'\]"
    CountingList.visits = 0
    with pytest.raises(AnswerKeyError, match=message):
        AnswerKey.from_dict(data)
    assert CountingList.visits <= 10 * n


def test_the_parser_finds_repeats_in_one_pass() -> None:
    from scoring.key import _repeated

    values = CountingList([*range(100_000), 3, 99_999, 3])
    CountingList.visits = 0
    assert _repeated(values) == [3, 99_999]
    assert CountingList.visits == len(values)
def _within(seconds: float, call):
    """``call()``, or TimeoutError after ``seconds`` (a quadratic check would run for minutes)."""
    import signal

    def expired(signum, frame):
        raise TimeoutError(f"still checking after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return call()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("annulled", list(range(1, 201)) * 500, r"annulled: 1, 2, 3.* listed more than once"),
    ("domains", [{"name": f"d{i % 100}", "questions": [i % 200 + 1]} for i in range(60_000)], r"names repeat"),
])
def test_duplicates_in_a_huge_key_are_found_in_linear_time(field, value, message):
    with pytest.raises(AnswerKeyError, match=message):
        _within(10.0, lambda: AnswerKey.from_dict(edited(**{field: value})))
