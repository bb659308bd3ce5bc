"""The public surface of `scoring`: a sorted, complete ``__all__``; docstring examples hold."""

from __future__ import annotations

import doctest
import importlib

import pytest

import scoring


def test_all_is_sorted_and_exported() -> None:
    assert scoring.__all__ == sorted(scoring.__all__)
    for name in scoring.__all__:
        assert hasattr(scoring, name), name


def test_the_pipeline_names_are_there() -> None:
    for name in ("load_key", "score_rows", "score_responses", "format_percent", "certificate_line",
                 "rescore_rows", "RescoreReport", "CohortScores", "AnswerKey"):
        assert name in scoring.__all__


@pytest.mark.parametrize("module", ["scoring.key", "scoring.core", "scoring.rows", "scoring.export", "scoring.items",
                                    "scoring.changes", "scoring.summary"])
def test_docstring_examples(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
