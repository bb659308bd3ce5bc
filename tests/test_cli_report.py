"""`omr report changes|items|summary|html|slips` on a synthetic LEK cohort store."""

import csv
import json
import re
import statistics

import pytest
from click.testing import CliRunner

from omr.cli import cli
from tests.omr.report_helpers import cohort_store, lek_key
from tests.scoring.reference import reference_score

N = 60


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    key = lek_key(3)
    rows = cohort_store(folder / "s.sqlite", key, N, wrong_key_at=41)
    return folder, key, rows


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def read(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_items_flag_the_wrong_key_letter(cohort, tmp_path):
    folder, _, _ = cohort
    result = invoke("report", "items", "--db", folder / "s.sqlite", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert f"{N} scored cards, 200 questions" in result.output and "not counted: 1 error" in result.output
    items = read(tmp_path / "items.csv")
    assert len(items) == 200 and list(items[0])[:8] == [
        "question",
        "key",
        "annulled",
        "p",
        "p_upper",
        "p_lower",
        "discrimination",
        "point_biserial",
    ]
    assert "top_prefers:" in items[41]["flags"] and "question 42 " in result.output
    assert all("top_prefers" not in r["flags"] for i, r in enumerate(items) if i != 41)


def test_changes_match_a_per_candidate_loop(cohort, tmp_path):
    folder, key, rows = cohort
    new = {**key, "annulled": [42, 7], "accepted": {"3": "ABCDE"}, "pass_percent": 60}
    (tmp_path / "k2.json").write_text(json.dumps(new))
    out = tmp_path / "changes.csv"
    result = invoke(
        "report", "changes", "--db", folder / "s.sqlite", "--to", tmp_path / "k2.json", "--out", out
    )
    assert result.exit_code == 0, result.output
    expected = []
    for r in rows:
        if r.status == "error":
            continue
        a, b = reference_score(key, r.responses, r.version), reference_score(new, r.responses, r.version)
        if (a.correct, a.percent, a.passed) != (b.correct, b.percent, b.passed):
            expected.append(
                (
                    r.source,
                    str(a.correct),
                    str(b.correct),
                    a.percent,
                    b.percent,
                    str(a.passed).lower(),
                    str(b.passed).lower(),
                )
            )
    got = [
        (
            r["source"],
            r["old_correct"],
            r["new_correct"],
            r["old_percent"],
            r["new_percent"],
            r["old_passed"],
            r["new_passed"],
        )
        for r in read(out)
    ]
    assert got == expected and len(got) == N
    flips = sum(1 for e in expected if e[5] == "true" and e[6] == "false")
    assert f"{N} scored cards compared: {N} moved" in result.output and f"{flips} pass→fail" in result.output
    # a stored revision works the same, and nothing was changed by the dry run
    listed = invoke("key", "list", "--db", folder / "s.sqlite").output
    assert listed.startswith("1 (current)") and "\n2 " not in listed
    bad = invoke("report", "changes", "--db", folder / "s.sqlite", "--to", "9")
    assert bad.exit_code == 2 and "has no key revision 9 (it has 1)" in bad.output


def finalised(rows):
    return [r for r in rows if r.status == "ok"]


def test_summary_is_cems_notice(cohort, tmp_path):
    folder, _, rows = cohort
    result = invoke("report", "summary", "--db", folder / "s.sqlite", "--out", tmp_path / "s.json")
    assert result.exit_code == 0, result.output
    points = [r.correct for r in finalised(rows)]
    lines = result.output.splitlines()
    assert lines[1] == f"candidates: {len(points)}"
    assert lines[2] == "maximum possible: 200 points (0 questions annulled)"
    assert lines[3] == (
        f"mean: {statistics.mean(points):.2f}, median: {statistics.median(points):g}, "
        f"highest: {max(points)}, lowest: {min(points)}"
    )
    assert lines[4] == f"below the pass mark (56%): {sum(1 for r in finalised(rows) if not r.passed)}"
    review = sum(1 for r in rows if r.status == "review")
    assert f"not counted: {review} cards still in review" in result.output
    figures = json.loads((tmp_path / "s.json").read_text())
    first = figures["fields"][0]
    assert first["name"] == "choroby wewnętrzne" and first["max_points"] == 39
    assert sum(first["distribution"]) == len(points) and len(first["distribution"]) == 40


def test_html_report_is_one_self_contained_file(cohort, tmp_path):
    folder, _, rows = cohort
    result = invoke("report", "html", "--db", folder / "s.sqlite", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert page.count('src="data:image/png;base64,') == 3
    assert not re.search(r'src="(?!data:)', page)  # nothing loaded from elsewhere
    points = [r.correct for r in finalised(rows)]
    assert f"<th>candidates (finalised cards)</th><td>{len(points)}</td>" in page
    assert f"<th>highest</th><td>{max(points)}</td>" in page
    assert "Flagged (possible key errors): 42" in page
    for name in ("histogram", "items", "fields"):
        assert (tmp_path / f"{name}.png").read_bytes().startswith(b"\x89PNG")
        assert b"<svg" in (tmp_path / f"{name}.svg").read_bytes()[:500]


def test_slips_one_page_per_finalised_card(cohort, tmp_path):
    import pypdfium2 as pdfium

    folder, _, rows = cohort
    out = tmp_path / "slips.pdf"
    result = invoke("report", "slips", "--db", folder / "s.sqlite", "--out", out)
    assert result.exit_code == 0, result.output
    final = finalised(rows)
    pending = [r for r in rows if r.status == "review"]
    assert (
        f"{len(final)} slips written" in result.output
        and f"not printed: {len(pending)} cards in review" in result.output
    )
    pdf = pdfium.PdfDocument(str(out))
    assert len(pdf) == len(final)
    for i in (0, len(final) - 1):
        text = pdf[i].get_textpage().get_text_range()
        r = final[i]
        assert f"Numer kodowy: {r.code_number}" in text
        assert f"Punkty: {r.correct} / 200" in text and f"Wynik procentowy: {r.percent}%" in text
        assert ("ZDANY" if r.passed else "NIEZDANY") in text
        assert re.search(rf"z wynikiem {r.percent}% \({r.correct} punkt\w* / 200 możliwych\)", text)
        assert "choroby wewnętrzne: " in text and "zdrowie publiczne: " in text
    pdf.close()
    listed = read(tmp_path / "slips-not-printed.csv")
    assert [r["code_number"] for r in listed] == [r.code_number for r in pending]


def test_slip_text_is_escaped_and_unknown_letters_say_so(tmp_path):
    import pypdfium2 as pdfium

    from omr.report import write_slips
    from scoring import AnswerKey, score_rows
    from scoring.results import ResultRow
    from scoring.rows import add_details

    key = AnswerKey.from_dict(lek_key(1))
    row = ResultRow(
        source="skan (1) \\ Жук.jpg",
        page=2,
        status="ok",
        code_number="012345674",
        version="A",
        responses=key.versions[0].answers,
    )
    (row,) = add_details(score_rows([row], key), key)
    assert write_slips([row, row], key, tmp_path / "s.pdf") == 2
    pdf = pdfium.PdfDocument(str(tmp_path / "s.pdf"))
    text = pdf[1].get_textpage().get_text_range()
    assert len(pdf) == 2 and "Źródło: skan (1) \\ ???.jpg, strona 2" in text
    assert "z wynikiem 100.00% (200 punktów / 200 możliwych)" in text and "Numer kodowy: 012345674" in text
    pdf.close()


def test_a_card_verified_at_the_review_station_gets_its_slip(tmp_path):
    import pypdfium2 as pdfium

    from omr.review.events import NewEvent
    from omr.store import open_store

    key = lek_key(5)
    rows = cohort_store(tmp_path / "s.sqlite", key, 10)
    held = rows[3]  # in review: '?' at question 11
    assert held.status == "review"
    letter = key["versions"]["A"]["key"][10]
    with open_store(tmp_path / "s.sqlite") as store:
        store.append_events(
            [
                NewEvent(held.source, 1, "h3", "dr Nowak", "answer:11", "?", letter, reason="ambiguous"),
                NewEvent(held.source, 1, "h3", "dr Nowak", "card_confirmed", "", "yes"),
            ]
        )
    result = invoke("report", "slips", "--db", tmp_path / "s.sqlite", "--out", tmp_path / "slips.pdf")
    assert result.exit_code == 0, result.output
    pending = [r for r in rows if r.status == "review" and r is not held]
    assert f"{len(finalised(rows)) + 1} slips written" in result.output
    assert f"not printed: {len(pending)} cards in review" in result.output
    pdf = pdfium.PdfDocument(str(tmp_path / "slips.pdf"))
    texts = [pdf[i].get_textpage().get_text_range() for i in range(len(pdf))]
    pdf.close()
    (page,) = [t for t in texts if f"Numer kodowy: {held.code_number}" in t]
    assert f"Punkty: {held.correct + 1} / 200" in page and "status verified" in page  # the '?' resolved right
