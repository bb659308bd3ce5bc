"""Scoring of LEK/LDEK answer cards: answer keys, the vectorised exact core, results files.

The public surface (spec §4–6)::

    load_key(path) -> AnswerKey                       validated key (scoring.key)
    key_to_dict(key) -> dict                          its canonical JSON form (store revisions)
    score_responses(responses, versions, key)         -> CohortScores (scoring.core)
    score_rows(rows, key) -> list[ResultRow]          results rows, scored (scoring.rows)
    rescore_rows(old_rows, key) -> RescoreReport      re-scoring with a corrected key
    write_csv / read_csv / write_jsonl / read_jsonl   results files (scoring.export)
    format_percent(hundredths), certificate_line(correct, max_points)
"""

from scoring.core import (
    CohortScores,
    certificate_line,
    decode_responses,
    encode_responses,
    format_percent,
    passed_mask,
    percent_decimal,
    percent_hundredths,
    response_alphabet,
    score_codes,
    score_responses,
    version_indices,
)
from scoring.export import read_csv, read_jsonl, read_results, write_csv, write_jsonl
from scoring.key import AcceptedAnswers, AnswerKey, Domain, VersionKey, key_to_dict, load_key
from scoring.results import RESULT_COLUMNS, STATUSES, ResultRow
from scoring.rows import SCORING_FLAGS, RescoreReport, rescore_rows, score_rows

__all__ = [
    "AcceptedAnswers",
    "AnswerKey",
    "CohortScores",
    "Domain",
    "RESULT_COLUMNS",
    "RescoreReport",
    "ResultRow",
    "SCORING_FLAGS",
    "STATUSES",
    "VersionKey",
    "certificate_line",
    "decode_responses",
    "encode_responses",
    "format_percent",
    "key_to_dict",
    "load_key",
    "passed_mask",
    "percent_decimal",
    "percent_hundredths",
    "read_csv",
    "read_jsonl",
    "read_results",
    "rescore_rows",
    "response_alphabet",
    "score_codes",
    "score_responses",
    "score_rows",
    "version_indices",
    "write_csv",
    "write_jsonl",
]
