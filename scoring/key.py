"""The answer key (spec §4): load, validate, and hold it as frozen dataclasses.

A key names, per test version, the right letter at every *card position* and, with
``order``, the *master question number* printed at that position.  Annulments,
accepted alternatives and the fields of medicine ("domains") use master numbers::

    card position p (0-based) ──order[p]──► master number m (1-based)
    versions.B.key[p]  = the right letter at card position p of version B
    annulled / accepted / domains: master numbers

`AnswerKey.from_dict` checks everything once and reports the dotted path of the
broken field (``versions.B.order: 17 appears twice, 42 is missing``); below the
loader nothing re-checks.  The question count, the option letters and the version
names all come from the key (and the layout's options), never from constants here;
only the regulation's field breakdown for LEK/LDEK is built in (spec §4).
"""

from __future__ import annotations

import difflib
import json
import reprlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from omr.errors import AnswerKeyError

__all__ = [
    "ANNULLED_POLICIES",
    "AcceptedAnswers",
    "AnswerKey",
    "DEFAULT_OPTIONS",
    "DEFAULT_VERSION_LABELS",
    "Domain",
    "KNOWN_EXAMS",
    "REGULATION_DOMAINS",
    "VersionKey",
    "key_to_dict",
    "load_key",
]

#: option letters when neither the caller (the layout) nor the key says otherwise
DEFAULT_OPTIONS = "ABCDE"
#: ``exclude``: an annulled question counts for nobody (maximum drops); ``credit``: everyone gets it
ANNULLED_POLICIES = ("exclude", "credit")
#: response characters that are never option letters (spec §2)
_NON_OPTION_CHARS = "-*?"
#: pass mark when the key does not give ``pass_percent``
_DEFAULT_PASS_PERCENT = {"LEK": 56, "LDEK": 56, "PES": 60}
#: ``exam`` values known without the key's own ``domains`` (another exam gives its own)
KNOWN_EXAMS = ("LEK", "LDEK", "PES")
#: version labels when the card layout's are not given: one capital letter
DEFAULT_VERSION_LABELS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

#: The regulation's split of the 200 questions into fields, in master-number order (spec §4).
#: LEK names as listed in the LEK/LDEK regulation (§2; quoted from memory, not checked
#: against the Dziennik Ustaw text); LDEK fields are numbered, not named, because their
#: names could not be matched to the counts with certainty.
REGULATION_DOMAINS: Mapping[str, tuple[tuple[str, int], ...]] = {
    "LEK": (
        ("choroby wewnętrzne", 39),
        ("pediatria", 29),
        ("chirurgia", 27),
        ("położnictwo i ginekologia", 26),
        ("psychiatria", 14),
        ("medycyna ratunkowa i intensywna terapia", 20),
        ("medycyna rodzinna", 20),
        ("orzecznictwo lekarskie", 10),
        ("bioetyka i prawo medyczne", 7),
        ("zdrowie publiczne", 8),
    ),
    "LDEK": tuple(
        (f"LDEK field {i}", n) for i, n in enumerate((46, 29, 25, 25, 20, 20, 10, 10, 7, 8), start=1)
    ),
}

_TOP_FIELDS = ("exam", "session", "questions", "options", "versions", "annulled", "accepted",
               "annulled_policy", "pass_percent", "domains")
_VERSION_FIELDS = ("key", "order")


@dataclass(frozen=True, slots=True)
class VersionKey:
    """One test version.

    name : the version label marked on the card (``"A"``)
    answers : the right letter at every card position, ``len == questions``
    order : master question number (1-based) at every card position, a permutation
        of ``1..questions`` (identity when the key gives no ``order``)
    """

    name: str
    answers: str
    order: tuple[int, ...]


class AcceptedAnswers(NamedTuple):
    """Letters accepted for a master question besides the key's own (after objections)."""

    question: int
    letters: str


@dataclass(frozen=True, slots=True)
class Domain:
    """A field of medicine: its name and the master numbers (1-based) of its questions."""

    name: str
    questions: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class AnswerKey:
    """A validated answer key; build it with `AnswerKey.from_dict` or `load_key`.

    Attributes
    ----------
    exam, session : str
        As in the key (``"LEK"``, ``"2026-09"``); may be empty.
    questions : int
        Q, the number of questions on the card.
    options : str
        The option letters (from the layout, ``"ABCDE"`` by default).
    versions : tuple of VersionKey
        In the key's order.
    annulled : tuple of int
        Sorted master numbers of annulled questions.
    accepted : tuple of AcceptedAnswers
        Sorted by master number; the key's own letter stays accepted too (spec §5: "the
        key's answer or an accepted one").  An annulled question ignores them.
    annulled_policy : str
        ``"exclude"`` or ``"credit"``.
    pass_percent : int
        Pass when ``correct * 100 >= pass_percent * max_points``.
    domains : tuple of Domain
        Fields of medicine (empty: no breakdown).
    source : str
        Where the key came from, for messages.
    """

    exam: str
    session: str
    questions: int
    options: str
    versions: tuple[VersionKey, ...]
    annulled: tuple[int, ...] = ()
    accepted: tuple[AcceptedAnswers, ...] = ()
    annulled_policy: str = "exclude"
    pass_percent: int = 56
    domains: tuple[Domain, ...] = ()
    source: str = "<dict>"

    @property
    def version_names(self) -> tuple[str, ...]:
        """Version labels in the key's order."""
        return tuple(v.name for v in self.versions)

    @property
    def max_points(self) -> int:
        """Points possible: questions − annulled (``exclude``) or questions (``credit``)."""
        if self.annulled_policy == "credit":
            return self.questions
        return self.questions - len(self.annulled)

    def version(self, name: str) -> VersionKey:
        """The version called ``name``.

        Raises
        ------
        AnswerKeyError
            The key has no such version.
        """
        for v in self.versions:
            if v.name == name:
                return v
        raise AnswerKeyError(
            f"answer key {self.source}: versions: no version {name!r} (the key has "
            f"{', '.join(self.version_names)}); add it to the key or fix the card's version"
        )

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>", options: str | None = None,
                  version_labels: str | None = None) -> AnswerKey:
        """Build and validate a key from its JSON form (spec §4).

        Parameters
        ----------
        data : dict
            The parsed JSON.
        source : str
            Named in every message (usually the file path).
        options : str, optional
            The card's option letters (``layout.options``).  Default: the key's own
            ``options`` field, else ``"ABCDE"``.  When both are given they must agree.
        version_labels : str, optional
            The version letters printed on the card (``layout.version.labels``): every
            version of the key must be one of them.  Default: any one capital letter.

        Returns
        -------
        AnswerKey

        Raises
        ------
        AnswerKeyError
            Naming ``source`` and the dotted path of the first broken field: unknown
            fields, a key of the wrong length, letters outside the options, annulled or
            accepted numbers out of range, an ``order`` that is not a permutation, a
            bad policy or pass mark, domains that overlap or do not add up, an LEK/LDEK
            key whose question count does not fit the regulation's breakdown, a version
            not printed on the card, an ``exam`` that is not `KNOWN_EXAMS` without its
            own ``domains``, every question annulled.

        Examples
        --------
        >>> key = AnswerKey.from_dict({"questions": 3, "versions": {"A": {"key": "ABC"}},
        ...                            "annulled": [2], "pass_percent": 50})
        >>> key.max_points, key.version("A").order
        (2, (1, 2, 3))
        """
        return _Parser(data, source).parse(cls, options, version_labels)


def load_key(path: str | Path, *, options: str | None = None, version_labels: str | None = None) -> AnswerKey:
    """Read and validate an answer key JSON file (spec §4).

    Parameters
    ----------
    path : str or Path
    options : str, optional
        The card's option letters (``layout.options``); see `AnswerKey.from_dict`.
    version_labels : str, optional
        The card's version letters (``layout.version.labels``); see `AnswerKey.from_dict`.

    Returns
    -------
    AnswerKey

    Raises
    ------
    AnswerKeyError
        The file cannot be read, is not JSON, or fails validation (the message names
        the file and the field).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise AnswerKeyError(f"cannot read answer key {path}: {err.strerror}") from err
    except UnicodeDecodeError as err:
        raise AnswerKeyError(
            f"answer key {path} is not UTF-8 text (byte {err.start}); save it as UTF-8"
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise AnswerKeyError(
            f"answer key {path} is not valid JSON: line {err.lineno} column {err.colno}: {err.msg}"
        ) from err
    except RecursionError:
        raise AnswerKeyError(f"answer key {path}: nested too deeply to be a key (lists or objects within "
                             "each other hundreds of levels down); check the file") from None
    except ValueError as err:  # an integer of thousands of digits
        raise AnswerKeyError(f"answer key {path} cannot be read: {err}; no field of a key needs such a "
                             "number") from None
    return AnswerKey.from_dict(data, source=str(path), options=options, version_labels=version_labels)


def key_to_dict(key: AnswerKey) -> dict[str, Any]:
    """The spec §4 JSON form of ``key``, every field explicit (``AnswerKey.from_dict`` inverts it).

    Two keys that score every card alike have equal dicts, whatever their files'
    formatting, field order or source: this is what the results store keeps as a key
    revision and compares.

    Examples
    --------
    >>> key = AnswerKey.from_dict({"questions": 2, "versions": {"A": {"key": "AB"}}, "pass_percent": 50})
    >>> d = key_to_dict(key)
    >>> d["versions"], d["annulled"], "domains" in d
    ({'A': {'key': 'AB'}}, [], False)
    >>> AnswerKey.from_dict(d) == key
    True
    """
    identity = tuple(range(1, key.questions + 1))
    versions: dict[str, dict[str, Any]] = {}
    for v in key.versions:
        versions[v.name] = {"key": v.answers} if v.order == identity else {"key": v.answers,
                                                                          "order": list(v.order)}
    out: dict[str, Any] = {
        "exam": key.exam,
        "session": key.session,
        "questions": key.questions,
        "options": key.options,
        "versions": versions,
        "annulled": list(key.annulled),
        "accepted": {str(a.question): a.letters for a in key.accepted},
        "annulled_policy": key.annulled_policy,
        "pass_percent": key.pass_percent,
    }
    if key.domains:  # an empty list would read as fields adding up to 0 questions
        out["domains"] = [{"name": d.name, "questions": list(d.questions)} for d in key.domains]
    return out


# -- validation ------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    """A JSON integer (``true``/``false`` and ``3.0`` are not)."""
    return isinstance(value, int) and not isinstance(value, bool)


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother, _SHORT.maxlong = 3, 40, 40, 24


def _shown(value: Any) -> str:
    """A value for a message: short whatever its size or depth."""
    try:
        return _SHORT.repr(value)
    except (ValueError, RecursionError):  # an int too long to print
        return f"<a {type(value).__name__} too large to show>"


def _repeated(values: Iterable[Any]) -> list[Any]:
    """The values occurring more than once, sorted (one pass: keys may be long)."""
    return sorted(v for v, n in Counter(values).items() if n > 1)


def _listing(numbers: list[int], limit: int = 8) -> str:
    """``1, 2, 3`` or ``1, 2, … (12 in all)``."""
    shown = ", ".join(str(n) for n in numbers[:limit])
    return shown if len(numbers) <= limit else f"{shown}, … ({len(numbers)} in all)"


class _Parser:
    """Checks a key dict field by field; every failure names the dotted path."""

    def __init__(self, data: Any, source: str) -> None:
        self.source = source
        if not isinstance(data, dict):
            raise AnswerKeyError(f"answer key {source}: expected a JSON object, got {type(data).__name__}")
        self.data = data

    def fail(self, path: str, message: str) -> AnswerKeyError:
        return AnswerKeyError(f"answer key {self.source}: {path}: {message}")

    def check_fields(self, obj: dict, known: tuple[str, ...], prefix: str) -> None:
        for name in obj:
            if name not in known:
                close = difflib.get_close_matches(str(name), known, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"known fields: {', '.join(known)}"
                raise self.fail(f"{prefix}{name}", f"unknown field; {hint}")

    def parse(self, cls: type[AnswerKey], options: str | None, version_labels: str | None) -> AnswerKey:
        data = self.data
        self.check_fields(data, _TOP_FIELDS, "")
        exam = self.exam()
        session = self.text("session")
        options = self.options(options)
        versions_raw = data.get("versions")
        if not isinstance(versions_raw, dict) or not versions_raw:
            raise self.fail("versions", f"expected an object with at least one version, got "
                                        f"{_shown(versions_raw)}")
        questions = self.questions(versions_raw)
        labels = DEFAULT_VERSION_LABELS if version_labels is None else version_labels
        versions = tuple(self.version(name, raw, questions, options, labels, version_labels is not None)
                         for name, raw in versions_raw.items())
        annulled = self.annulled(questions)
        accepted = self.accepted(questions, options)
        policy = data.get("annulled_policy", "exclude")
        if policy not in ANNULLED_POLICIES:
            raise self.fail("annulled_policy", f"expected 'exclude' or 'credit', got {_shown(policy)}")
        if len(annulled) == questions:
            raise self.fail("annulled", f"every one of the {questions} questions is annulled: nothing is left "
                                        "to score; annul only the questions the objections committee struck")
        return cls(
            exam=exam,
            session=session,
            questions=questions,
            options=options,
            versions=versions,
            annulled=annulled,
            accepted=accepted,
            annulled_policy=policy,
            pass_percent=self.pass_percent(exam),
            domains=self.domains(exam, questions),
            source=self.source,
        )

    def text(self, name: str) -> str:
        value = self.data.get(name, "")
        if not isinstance(value, str):
            raise self.fail(name, f"expected a string, got {_shown(value)}")
        return value

    def exam(self) -> str:
        """``exam``: a known exam (which implies its fields and pass mark), or any other
        name when the key gives its own ``domains`` (nothing is implied then)."""
        exam = self.text("exam")
        if not exam or exam.upper() in KNOWN_EXAMS or "domains" in self.data:
            return exam
        close = difflib.get_close_matches(exam.upper(), KNOWN_EXAMS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise self.fail("exam", f"{_shown(exam)} is not a known exam ({', '.join(KNOWN_EXAMS)}); {hint}a key for "
                                "another exam gives its own 'domains' (and 'pass_percent')")

    def options(self, given: str | None) -> str:
        own = self.data.get("options")
        if own is not None:
            if not isinstance(own, str):
                raise self.fail("options", f"expected a string of option letters, got {_shown(own)}")
            if given is not None and own != given:
                raise self.fail("options", f"the key says {own!r} but the card layout has {given!r}; "
                                           "use the key written for this card")
        letters = given if given is not None else own if own is not None else DEFAULT_OPTIONS
        path = "options" if own is not None and given is None else "options (from the card layout)"
        if not letters or len(set(letters)) != len(letters):
            raise self.fail(path, f"need distinct option letters, got {letters!r}")
        bad = [c for c in letters if c in _NON_OPTION_CHARS or not c.isascii() or not c.isprintable()
               or c.isspace() or c == ";"]
        if bad:
            raise self.fail(path, f"{bad[0]!r} cannot be an option letter (printable ASCII other than "
                                  f"'-', '*', '?', ';' and space)")
        if len(letters) > 32:
            raise self.fail(path, f"{len(letters)} options; at most 32 are supported")
        return letters

    def questions(self, versions_raw: dict) -> int:
        value = self.data.get("questions")
        if value is None:  # not given: the first version's key says it
            first = next(iter(versions_raw.values()))
            key = first.get("key") if isinstance(first, dict) else None
            if isinstance(key, str) and key:
                return len(key)
            raise self.fail("questions", "missing, and the first version has no key to count")
        if not _is_int(value) or value < 1:
            raise self.fail("questions", f"expected a positive integer, got {_shown(value)}")
        return value

    def version(self, name: Any, raw: Any, questions: int, options: str, labels: str,
                from_layout: bool) -> VersionKey:
        path = f"versions.{_shown(name)[1:-1]}"
        if not isinstance(name, str) or len(name) != 1 or name not in labels:
            where = (f"the card's version labels are {', '.join(labels)}" if from_layout else
                     "a version is one capital letter as marked on the card (A, B, ...)")
            raise self.fail(path, f"{_shown(name)} is not a version of this card: {where}")
        if not isinstance(raw, dict):
            raise self.fail(path, f"expected an object with 'key' (and optional 'order'), got {_shown(raw)}")
        self.check_fields(raw, _VERSION_FIELDS, f"{path}.")
        answers = raw.get("key")
        if not isinstance(answers, str):
            raise self.fail(f"{path}.key", f"expected a string of {questions} letters, got {_shown(answers)}")
        if len(answers) != questions:
            raise self.fail(f"{path}.key", f"{len(answers)} letters, but the key has {questions} questions")
        bad = [p + 1 for p, c in enumerate(answers) if c not in options]
        if bad:
            raise self.fail(
                f"{path}.key",
                f"letter {answers[bad[0] - 1]!r} at card position {bad[0]} is not one of the options "
                f"{options!r} (positions {_listing(bad)}); an annulled question still needs a letter",
            )
        return VersionKey(name=name, answers=answers, order=self.order(raw.get("order"), path, questions))

    def order(self, raw: Any, path: str, questions: int) -> tuple[int, ...]:
        path = f"{path}.order"
        if raw is None:
            return tuple(range(1, questions + 1))
        if not isinstance(raw, list) or not all(_is_int(v) for v in raw):
            raise self.fail(path, "expected a list of master question numbers (integers)")
        if len(raw) != questions:
            raise self.fail(path, f"{len(raw)} entries, but the key has {questions} questions")
        seen: set[int] = set()
        twice = sorted({v for v in raw if v in seen or seen.add(v)})  # type: ignore[func-returns-value]
        outside = sorted({v for v in raw if not 1 <= v <= questions})
        missing = sorted(set(range(1, questions + 1)) - set(raw))
        if twice or outside:
            what = []
            if outside:
                what.append(f"{_listing(outside)} outside 1..{questions}")
            if twice:
                what.append(f"{_listing(twice)} listed more than once")
            what.append(f"missing {_listing(missing)}")
            raise self.fail(path, f"not a permutation of 1..{questions}: {'; '.join(what)}")
        return tuple(raw)

    def annulled(self, questions: int) -> tuple[int, ...]:
        raw = self.data.get("annulled", [])
        if not isinstance(raw, list):
            raise self.fail("annulled", f"expected a list of master question numbers, got {_shown(raw)}")
        for i, v in enumerate(raw):
            if not _is_int(v) or not 1 <= v <= questions:
                raise self.fail(f"annulled[{i}]", f"{_shown(v)} is not a question number 1..{questions}")
        if len(set(raw)) != len(raw):
            raise self.fail("annulled", f"{_listing(_repeated(raw))} listed more than once")
        return tuple(sorted(raw))

    def accepted(self, questions: int, options: str) -> tuple[AcceptedAnswers, ...]:
        raw = self.data.get("accepted", {})
        if not isinstance(raw, dict):
            raise self.fail("accepted", f"expected an object like {{\"45\": \"BD\"}}, got {_shown(raw)}")
        out = []
        for name, letters in raw.items():
            path = f"accepted.{_shown(name)[1:-1]}"
            if not (name.isascii() and name.isdigit() and len(name) <= 9) or not 1 <= int(name) <= questions:
                raise self.fail(path, f"{_shown(name)} is not a question number 1..{questions}")
            if not isinstance(letters, str) or not letters:
                raise self.fail(path, f"expected a string of accepted letters like 'BD', got {_shown(letters)}")
            bad = [c for c in letters if c not in options]
            if bad:
                raise self.fail(path, f"letter {bad[0]!r} is not one of the options {options!r}")
            if len(set(letters)) != len(letters):
                raise self.fail(path, f"{letters!r} repeats a letter")
            out.append(AcceptedAnswers(int(name), letters))
        numbers = [a.question for a in out]
        if len(set(numbers)) != len(numbers):
            raise self.fail("accepted", "a question is listed more than once (e.g. '45' and '045')")
        return tuple(sorted(out))

    def pass_percent(self, exam: str) -> int:
        value = self.data.get("pass_percent")
        if value is None:
            default = _DEFAULT_PASS_PERCENT.get(exam.upper())
            if default is None:
                raise self.fail("pass_percent", f"missing, and exam {exam!r} has no known pass mark; "
                                                "give e.g. \"pass_percent\": 56")
            return default
        if not _is_int(value) or not 0 <= value <= 100:
            raise self.fail("pass_percent", f"expected a whole percentage 0..100, got {_shown(value)}")
        return value

    def domains(self, exam: str, questions: int) -> tuple[Domain, ...]:
        raw = self.data.get("domains")
        if raw is None:
            regulation = REGULATION_DOMAINS.get(exam.upper())
            if regulation is None:
                return ()
            total = sum(n for _, n in regulation)
            if questions != total:
                raise self.fail(
                    "questions",
                    f"exam {exam!r} has {total} questions split by the regulation into fields, but "
                    f"this key has {questions}; fix 'questions'/'exam' or give the key its own 'domains'",
                )
            return _consecutive(regulation)
        if isinstance(raw, dict):
            items = list(raw.items())
        elif isinstance(raw, list):
            items = []
            for i, entry in enumerate(raw):
                if not isinstance(entry, dict) or set(entry) != {"name", "questions"}:
                    raise self.fail(f"domains[{i}]", "expected {\"name\": ..., \"questions\": count or "
                                                     "list of master numbers}")
                items.append((entry["name"], entry["questions"]))
        else:
            raise self.fail("domains", f"expected a list or an object, got {type(raw).__name__}")
        names = [name for name, _ in items]
        for i, name in enumerate(names):
            if not isinstance(name, str) or not name.strip():
                raise self.fail(f"domains[{i}].name", f"expected a non-empty name, got {_shown(name)}")
        if len(set(names)) != len(names):
            raise self.fail("domains", f"names repeat: {_shown(_repeated(names))}")
        if all(_is_int(q) for _, q in items):
            total = sum(q for _, q in items)
            if total != questions or any(q < 0 for _, q in items):
                raise self.fail("domains", f"counts add up to {total}, but the key has {questions} questions")
            return _consecutive(tuple(items))
        seen: dict[int, str] = {}
        out = []
        for name, qs in items:
            path = f"domains.{_shown(name)[1:-1]}"
            if not isinstance(qs, list) or not all(_is_int(q) for q in qs):
                raise self.fail(path, "expected a count (all domains) or a list of master numbers")
            for q in qs:
                if not 1 <= q <= questions:
                    raise self.fail(path, f"{q} is not a question number 1..{questions}")
                if q in seen:
                    raise self.fail(path, f"question {q} is already in domain {seen[q]!r}")
                seen[q] = name
            out.append(Domain(name=name, questions=tuple(sorted(qs))))
        return tuple(out)


def _consecutive(counts: tuple[tuple[str, int], ...]) -> tuple[Domain, ...]:
    """Domains taking consecutive runs of master numbers, in order."""
    out, start = [], 1
    for name, n in counts:
        out.append(Domain(name=name, questions=tuple(range(start, start + n))))
        start += n
    return tuple(out)
