"""The marking policy's rules, each on its own evidence, and their order."""

from dataclasses import replace

import numpy as np
import pytest

from calibration import MarkThresholds, bitonal_thresholds
from omr.flags import Flag
from omr.marks import AMBIGUOUS, BLANK, MARKED, classify_boxes, read_responses
from omr.policy import (
    MARKING_POLICY,
    MarkEvidence,
    apply_policy,
    clear_faint_beside_fill,
    doubt_column_streaks,
    doubt_dirty_boxes,
    doubt_implausible_multiples,
    doubt_lines_beside_fills,
    doubt_misplaced_questions,
    doubt_multiples_on_dirty_cards,
    doubt_standout_blanks,
    doubt_unregistered_blocks,
    doubt_weak_marks_on_doubtful_cards,
    mark_drawn_crosses,
)
from tests.omr.test_marks import features

T = MarkThresholds()
FILL = features(fill=0.7, ink=0.8, core=0.7)[0]
SOLID = features(fill=0.75, ink=0.92, core=0.8, peak=0.94)[0]
LIGHT_FILL = features(fill=0.40, ink=0.02, core=0.4)[0]  # at the mark level, not solid
LINES = features(fill=0.12, ink=0.08, stroke=0.2, peak=0.7)[0]  # a cross, or dirt
TEXTURE = features(fill=0.18, ink=0.0, stroke=0.18, peak=0.42)[0]  # scan texture, residue (few lines: 0.2 would be a mark)
BLANK_BOX = features()[0]


def evidence(
    rows, *, surround=None, outline=None, thresholds=T, columns=None, drawn_crosses=None, blocks=None, unregistered=None
):
    """The evidence of a card holding only these (Q, C, F) answer rows."""
    rows = np.asarray(rows, np.float32)
    q, c = rows.shape[:2]
    return MarkEvidence(
        features=rows.reshape(q * c, -1),
        surround=np.zeros(q * c, np.float32) if surround is None else np.asarray(surround, np.float32).ravel(),
        outline=np.ones(q * c, np.float32) if outline is None else np.asarray(outline, np.float32).ravel(),
        thresholds=thresholds,
        answers=slice(0, q * c),
        n_options=c,
        columns=None if columns is None else np.asarray(columns, np.int64),
        drawn_crosses=None if drawn_crosses is None else np.asarray(drawn_crosses, np.float32).ravel(),
        blocks=None if blocks is None else np.asarray(blocks, np.int64),
        unregistered=None if unregistered is None else np.asarray(unregistered, bool).ravel(),
    )


def read(rule, rows, **kw):
    """The responses after classifying ``rows`` and applying ``rule``, and what it flagged."""
    ev = evidence(rows, **kw)
    states, flagged = rule(classify_boxes(ev.features, ev.thresholds), ev)
    return read_responses(ev.per_question(states), "ABCDE"[: ev.n_options]), flagged


def test_the_policy_runs_its_rules_in_the_documented_order():
    assert [r.name for r in MARKING_POLICY] == [
        "mark_drawn_crosses",
        "doubt_standout_blanks",
        "doubt_dirty_boxes",
        "clear_faint_beside_fill",
        "doubt_misplaced_questions",
        "doubt_implausible_multiples",
        "doubt_multiples_on_dirty_cards",
        "doubt_column_streaks",
        "doubt_lines_beside_fills",
        "doubt_weak_marks_on_doubtful_cards",
        "doubt_unregistered_blocks",
    ]
    assert [r.flag for r in MARKING_POLICY] == [
        None,
        None,
        Flag.DIRTY,
        None,
        Flag.MISPLACED,
        Flag.IMPLAUSIBLE_MULTIPLES,
        Flag.DIRTY_MULTIPLES,
        Flag.STREAK,
        None,
        Flag.DOUBTFUL_CARD,
        None,
    ]


def test_a_marked_box_standing_in_dirt_is_doubted_and_its_question_flagged():
    rows = [[FILL, BLANK_BOX, BLANK_BOX], [FILL, BLANK_BOX, BLANK_BOX], [BLANK_BOX, BLANK_BOX, BLANK_BOX]]
    surround = np.zeros((3, 3))
    surround[1, 0] = T.max_surround_darkness  # the mark of question 2 stands in dirt
    surround[2, 1] = 0.5  # a blank box in dirt stays blank
    responses, flagged = read(doubt_dirty_boxes, rows, surround=surround)
    assert responses == "A?-"
    assert flagged.tolist() == [False, True, False]


def test_lines_beside_a_fill_are_doubted_not_counted_as_a_second_answer():
    rows = [
        [FILL, LINES, BLANK_BOX],  # fill + lines: '?', a person decides
        [FILL, FILL, BLANK_BOX],  # two fills: a real multiple answer, '*'
        [LINES, LINES, BLANK_BOX],  # two crosses, no fill: '*'
        [BLANK_BOX, LINES, BLANK_BOX],  # one cross alone: the answer
        [LIGHT_FILL, LINES, BLANK_BOX],  # a light fill + lines: '?' too
        [LIGHT_FILL, FILL, BLANK_BOX],  # two fills, one light: '*'
    ]
    assert read(lambda s, ev: (s, None), rows)[0] == "***B**"  # as the levels alone read them
    assert read(doubt_lines_beside_fills, rows) == ("?**B?*", None)


def test_faint_texture_beside_a_solid_fill_is_blank_unless_dirty_or_darker():
    grey_fill = features(fill=0.46, ink=0.2, core=0.46, peak=0.67)[0]  # marked, but not solid
    rows = [
        [SOLID, TEXTURE, BLANK_BOX],  # residue beside the answer: the answer
        [SOLID, TEXTURE, BLANK_BOX],  # the same with dirt around the residue: '?'
        [BLANK_BOX, TEXTURE, BLANK_BOX],  # no fill to compare with: '?'
        [SOLID, SOLID, TEXTURE],  # two fills: still '*'
        [grey_fill, TEXTURE, BLANK_BOX],  # the mark is not solid: '?'
    ]
    surround = np.zeros((5, 3))
    surround[1, 1] = 0.5
    ev = evidence(rows, surround=surround)
    states = classify_boxes(ev.features, T)
    assert ev.per_question(states)[0, 1] == AMBIGUOUS and ev.per_question(states)[4, 0] == MARKED
    assert read(clear_faint_beside_fill, rows, surround=surround) == ("A??*?", None)
    # a faint box more than half as dark as the fill beside it may be a light second mark
    dark_fill = features(fill=0.6, ink=0.87, core=0.6, peak=0.76)[0]
    light_cross = features(fill=0.12, ink=0.03, stroke=0.18, peak=0.48)[0]  # over half the fill's peak
    assert read(clear_faint_beside_fill, [[dark_fill, light_cross, BLANK_BOX]])[0] == "?"
    # the share is the policy's number: at 0.7 of the fill's peak that box is cleared too
    looser = replace(T, faint_peak_share=0.7)
    assert read(clear_faint_beside_fill, [[dark_fill, light_cross, BLANK_BOX]], thresholds=looser)[0] == "A"


def test_a_washed_out_mark_standing_out_of_a_clean_row_is_doubted_not_blank():
    """Measured on Augraphy's faded scans: a fill at fill 0.26, peak 0.43, a tick at
    peak 0.49, the paper beside them at 0.02-0.05 -- all read blank by the levels."""
    washed_fill = features(fill=0.26, core=0.27, stroke=0.09, peak=0.43)[0]
    washed_tick = features(fill=0.08, ink=0.04, stroke=0.12, peak=0.49)[0]
    paper = features(fill=0.005, peak=0.03)[0]
    dirty_paper = features(fill=0.1, stroke=0.1, peak=0.35)[0]
    rows = [
        [washed_fill, paper, paper],
        [paper, washed_tick, paper],
        [washed_fill, dirty_paper, dirty_paper],  # on a dirty row nothing stands out
        [features(fill=0.1, peak=0.22)[0], paper, paper],  # under the levels: paper texture
    ]
    assert read(lambda s, ev: (s, None), rows)[0] == "----"  # as the levels alone read them
    assert read(doubt_standout_blanks, rows) == ("??--", None)
    # lighter still (Augraphy's seed-23 set: washed ticks at peak 0.27-0.30): '?' only
    # when spread over the box, against paper five times lighter; a washed fill, grey
    # all over, looks like an erasure residue and stays blank
    faint_tick = features(fill=0.06, stroke=0.13, peak=0.28, spread=0.8)[0]
    faint_speck = features(fill=0.06, stroke=0.13, peak=0.28, spread=0.3)[0]
    grey_fill = features(fill=0.26, core=0.26, peak=0.31, spread=0.0)[0]
    paper_beside = features(fill=0.02, peak=0.08)[0]  # 3.5 times lighter only
    lighter = [
        [faint_tick, paper, paper],
        [paper, grey_fill, paper],
        [faint_speck, paper, paper],
        [faint_tick, paper_beside, paper_beside],
    ]
    assert read(lambda s, ev: (s, None), lighter)[0] == "----"
    assert read(doubt_standout_blanks, lighter) == ("?---", None)
    # lighter again beside paper clipped to white (Augraphy's seed-51 set: ticks at
    # peak 0.15-0.32, the rest of the question at 0.001-0.01): what survived is ink
    clipped_tick = features(fill=0.03, peak=0.16, spread=0.0)[0]
    white = features(fill=0.0, peak=0.004)[0]
    noisy_paper = features(fill=0.01, peak=0.02)[0]  # a faint stroke beside scanner noise
    clipped = [[clipped_tick, white, white], [clipped_tick, noisy_paper, noisy_paper], [white] * 3]
    assert read(lambda s, ev: (s, None), clipped)[0] == "---"
    assert read(doubt_standout_blanks, clipped) == ("?--", None)
    # beside a solid fill it is '?' too, and the residue rule after it clears it
    beside_fill = [[SOLID, washed_fill, paper, paper, paper]]
    assert read(doubt_standout_blanks, beside_fill)[0] == "?"
    ev = evidence(beside_fill)
    outcome = apply_policy(classify_boxes(ev.features, ev.thresholds), ev)
    assert read_responses(ev.per_question(outcome.states), "ABCDE") == "A"
    bitonal = evidence([[features(fill=0.02, ink=0.02, peak=1.0)[0], paper, paper]], thresholds=bitonal_thresholds())
    states = classify_boxes(bitonal.features, bitonal.thresholds)
    assert states[0] == BLANK  # a few black samples: a 1-bit box's darkest tenth is black
    assert (doubt_standout_blanks(states, bitonal)[0] == states).all()  # off on 1-bit


def test_a_question_off_its_printed_outlines_is_doubted_whatever_its_boxes_say():
    rows = [[FILL, BLANK_BOX, BLANK_BOX]] * 6 + [[BLANK_BOX] * 3]
    outline = np.ones((7, 3))
    outline[1] = 0.39  # under 0.4 of the card's median (1): misplaced
    outline[2] = 0.41
    outline[6] = 0.1  # a blank row off its outlines is '?' too
    responses, flagged = read(doubt_misplaced_questions, rows, outline=outline)
    assert responses == "A?AAAA?"
    assert flagged.tolist() == [False, True, False, False, False, False, True]


def test_part_of_a_row_moved_off_its_outlines_is_doubted_when_its_neighbour_moved_too():
    """A fold shears the last columns half a row down: three boxes keep the row's mean
    outline up, the moved ones have none, nor have the boxes above or below them."""
    rows = [[BLANK_BOX, BLANK_BOX, FILL]] * 6
    outline = np.ones((6, 3))
    outline[1:3, 2] = [0.04, 0.05]  # two rows' last box moved: under 0.06 of the median
    outline[4, 2] = 0.0  # one broken outline alone (dithering): its neighbours are fine
    responses, flagged = read(doubt_misplaced_questions, rows, outline=outline)
    assert responses == "C??CCC"
    assert flagged.tolist() == [False, True, True, False, False, False]
    assert read(doubt_misplaced_questions, rows, outline=outline, thresholds=bitonal_thresholds())[0] == "CCCCCC"  # off on 1-bit


@pytest.mark.parametrize(("multiples", "implausible"), [(9, False), (10, True)])
def test_far_too_many_multiple_answers_send_every_mark_to_review(multiples, implausible):
    """Over 10 % of the questions read '*' (here ``multiples`` and the last row, of
    100): no mark on the card is trusted."""
    rows = [[FILL, FILL, BLANK_BOX]] * multiples + [[FILL, BLANK_BOX, BLANK_BOX]] * (98 - multiples)
    rows += [[BLANK_BOX] * 3, [FILL, BLANK_BOX, LINES]]
    responses, flagged = read(doubt_implausible_multiples, rows)
    assert flagged is implausible
    if implausible:
        assert responses == "?" * 98 + "-?"
    else:
        assert responses == "*" * 9 + "A" * 89 + "-*"


def test_the_count_of_multiples_sees_lines_beside_fills_before_they_are_doubted():
    """On a speckled copy, specks read as lines beside every fill: the card is
    implausible, which it would not be if the lines were doubted first."""
    rows = [[FILL, LINES, BLANK_BOX]] * 20 + [[FILL, BLANK_BOX, BLANK_BOX]] * 80
    ev = evidence(rows)
    outcome = apply_policy(classify_boxes(ev.features, T), ev)
    assert outcome.flags == ("implausible_multiples", "doubtful_card")  # 20 '?' of 100 questions
    by_name = {rule.name: rule for rule in MARKING_POLICY}
    lines_first = (by_name["doubt_lines_beside_fills"], by_name["doubt_implausible_multiples"])
    assert apply_policy(classify_boxes(ev.features, T), ev, lines_first).flags == ()


def test_faint_boxes_on_a_misplaced_row_are_not_cleared():
    rows = [[SOLID, TEXTURE, BLANK_BOX]] * 4
    outline = np.ones((4, 3))
    outline[0] = 0.1
    ev = evidence(rows, outline=outline)
    outcome = apply_policy(classify_boxes(ev.features, T), ev)
    assert read_responses(ev.per_question(outcome.states), "ABC") == "?AAA"
    assert outcome.flags == ("misplaced:1", "doubtful_card")  # one '?' of four questions
    assert (ev.per_question(outcome.states)[0] == AMBIGUOUS).all()
    assert ev.per_question(outcome.states)[1, 1] == BLANK and ev.per_question(outcome.states)[1, 0] == MARKED


def test_flags_come_out_in_the_vocabulary_order():
    rows = [[FILL, FILL, BLANK_BOX]] * 12 + [[FILL, BLANK_BOX, BLANK_BOX]] * 88
    surround = np.zeros((100, 3))
    surround[50, 0] = 0.5
    outline = np.ones((100, 3))
    outline[60] = 0.0
    ev = evidence(rows, surround=surround, outline=outline)
    outcome = apply_policy(classify_boxes(ev.features, T), ev)
    assert outcome.flags == ("dirty:51", "implausible_multiples", "misplaced:61", "doubtful_card")
    assert MARKED not in ev.per_question(outcome.states)


@pytest.mark.parametrize(("dirty_rows", "doubted"), [(1, False), (2, True)])
def test_on_a_card_dirty_in_several_places_multiple_answers_are_doubted(dirty_rows, doubted):
    """Dirt around the marks of two questions: a '*' elsewhere on the card is more
    likely a cluster of specks beside the answer than a second answer."""
    rows = [[FILL, BLANK_BOX, BLANK_BOX]] * 10 + [[FILL, FILL, BLANK_BOX], [FILL, LINES, LIGHT_FILL]]
    surround = np.zeros((12, 3))
    surround[:dirty_rows, 0] = 0.5
    ev = evidence(rows, surround=surround)
    states, _ = doubt_dirty_boxes(classify_boxes(ev.features, T), ev)
    states, flagged = doubt_multiples_on_dirty_cards(states, ev)
    assert flagged is doubted
    responses = read_responses(ev.per_question(states), "ABC")
    assert responses == "?" * dirty_rows + "A" * (10 - dirty_rows) + ("??" if doubted else "**")


def _streak_card(streaked_rows, questions=10):
    """``questions`` rows of three boxes, one column per option; option B has lines in
    the first ``streaked_rows`` rows, every row has its answer filled in A or C."""
    rows = []
    for q in range(questions):
        rows.append([FILL if q % 2 else BLANK_BOX, LINES if q < streaked_rows else BLANK_BOX, BLANK_BOX if q % 2 else FILL])
    columns = np.tile(np.arange(3), (questions, 1))
    return rows, columns


@pytest.mark.parametrize(("streaked_rows", "doubted"), [(5, True), (9, True), (4, False), (1, False)])
def test_lines_down_half_a_column_are_a_streak_not_answers(streaked_rows, doubted):
    rows, columns = _streak_card(streaked_rows)
    # the lines alone, without the fills (which would let doubt_lines_beside_fills act)
    rows = [[BLANK_BOX, r[1], BLANK_BOX] for r in rows]
    responses, flagged = read(doubt_column_streaks, rows, columns=columns)
    if doubted:
        assert responses[:streaked_rows] == "?" * streaked_rows
        assert flagged.tolist() == [True] * streaked_rows + [False] * (10 - streaked_rows)
    else:
        assert responses[:streaked_rows] == "B" * streaked_rows
        assert flagged is None
    assert responses[streaked_rows:] == "-" * (10 - streaked_rows)


def test_a_streak_leaves_fills_marked_and_needs_to_know_the_columns():
    rows, columns = _streak_card(10)
    responses, _ = read(doubt_column_streaks, rows, columns=columns)
    assert responses == "?" * 10  # the fill is read, the streak's box doubted
    ev = evidence(rows, columns=columns)
    states, _ = doubt_column_streaks(classify_boxes(ev.features, ev.thresholds), ev)
    assert (ev.per_question(states)[:, [0, 2]].max(axis=1) == MARKED).all()
    assert read(doubt_column_streaks, rows)[0] == "*" * 10  # no columns known: no column streak


def test_lines_across_every_box_of_a_row_are_a_streak_not_five_answers():
    """Measured on Augraphy's seed-31 set: a blank row read '*' from a light line
    through all its boxes (fill 0.07-0.1, strokes 0.15-0.23 spread over each box)."""
    rows = [[LINES, LINES, LINES], [LINES, LINES, BLANK_BOX], [LINES, LINES, FILL], [FILL, BLANK_BOX, BLANK_BOX]]
    responses, flagged = read(doubt_column_streaks, rows)  # no columns needed
    assert responses == "?**A"  # two crossed boxes stay a double mark; a fill is not a line
    assert flagged.tolist() == [True, False, False, False]


def test_a_doubtful_box_with_a_drawn_cross_is_marked_and_later_rules_still_doubt_it():
    """1-bit levels: a thick cross and a residue look alike by their features ('?');
    the strokes measured on the page tell them apart.  Dirt around the box still wins."""
    thick = features(fill=0.4, ink=0.4, stroke=0.45, peak=1.0, cross=-0.5)[0]
    rows = [[thick, BLANK_BOX, BLANK_BOX]] * 4
    drawn = np.full((4, 3), np.nan)
    drawn[:, 0] = [0.7, 0.6, 0.59, 0.2]  # two crosses, then a doubtful one and a residue
    responses, flagged = read(mark_drawn_crosses, rows, thresholds=bitonal_thresholds(), drawn_crosses=drawn)
    assert (responses, flagged) == ("AA??", None)
    assert read(mark_drawn_crosses, rows, thresholds=bitonal_thresholds())[0] == "????"  # nothing measured
    assert read(mark_drawn_crosses, rows, thresholds=T, drawn_crosses=drawn)[0] == "AAAA"  # grey levels: fill marks
    surround = np.zeros((4, 3))
    surround[0, 0] = 0.5
    ev = evidence(rows, surround=surround, thresholds=bitonal_thresholds(), drawn_crosses=drawn)
    outcome = apply_policy(classify_boxes(ev.features, ev.thresholds), ev)
    assert read_responses(ev.per_question(outcome.states), "ABC") == "?A??"
    assert outcome.flags == ("dirty:1",)


#: a question the box levels leave '?' (a blot between the levels)
DOUBT = [features(fill=0.32, core=0.3)[0], BLANK_BOX, BLANK_BOX]


@pytest.mark.parametrize(("doubts", "changed"), [(1, False), (2, True)])
def test_on_a_card_doubted_on_a_tenth_of_its_questions_weak_marks_multiples_and_standouts_are_doubted(doubts, changed):
    """Measured on Augraphy's scanner sets: a dithered erasure residue read as a tick
    (peak 0.58-0.67 among marks at 0.9-1.0), speckle read as a second mark beside a
    cross, a fill washed to an even grey (peak 0.32) and a blurred tick (peak 0.26,
    paper beside at 0.06) read blank -- on cards '?' on 12-55 % of their questions."""
    paper = features(fill=0.005, peak=0.04)[0]
    dark_fill = features(fill=0.85, ink=0.9, core=0.85, peak=1.0)[0]
    pen_cross = features(fill=0.2, ink=0.25, stroke=0.3, peak=0.95)[0]
    dithered_residue = features(fill=0.29, ink=0.09, stroke=0.5, peak=0.6)[0]  # marked by its lines
    light_fill = features(fill=0.4, ink=0.37, stroke=0.5, peak=0.8)[0]  # under half the fills' fill
    washed_fill = features(fill=0.26, core=0.26, peak=0.32, spread=0.0)[0]
    blurred_tick = features(fill=0.06, stroke=0.1, peak=0.26, spread=0.8)[0]
    grey_paper = features(fill=0.02, peak=0.07)[0]  # under 5x lighter: doubt_standout_blanks keeps it
    rows = [
        [dark_fill, paper, paper],
        [paper, dark_fill, paper],
        [paper, paper, dark_fill],
        [dark_fill, paper, paper],
        [dithered_residue, paper, paper],
        [paper, light_fill, paper],
        [pen_cross, paper, dark_fill],  # '*': two marks on such a card are doubted too
        [paper, washed_fill, paper],
        [grey_paper, grey_paper, blurred_tick],
        *[[paper, paper, paper]] * 9,
    ] + [DOUBT] * doubts  # 2 of 20 questions '?': a tenth
    as_read = "ABCAAB*--" + "-" * 9 + "?" * doubts
    assert read(lambda s, ev: (s, None), rows)[0] == as_read
    responses, flagged = read(doubt_weak_marks_on_doubtful_cards, rows)
    assert flagged is changed
    assert responses == ("ABCA?????" + "-" * 9 + "?" * doubts if changed else as_read)
    # 1-bit levels switch it off: a 1-bit box's darkest tenth is black or white
    ev = evidence(rows + [DOUBT] * 4, thresholds=bitonal_thresholds())
    states = classify_boxes(ev.features, ev.thresholds)
    doubted, flagged = doubt_weak_marks_on_doubtful_cards(states, ev)
    assert flagged is False
    assert (doubted == states).all()


def test_a_block_off_its_outlines_and_mostly_doubted_is_doubted_whole():
    """Measured on Augraphy's scanner set, seed 11: a folded block '?' on 97 of its
    120 questions read a filled row blank (its samples beside the boxes)."""
    rows = [[FILL, BLANK_BOX, BLANK_BOX], DOUBT, DOUBT, [BLANK_BOX] * 3] * 2  # two blocks of 4
    blocks = [0, 0, 0, 0, 1, 1, 1, 1]
    as_read = "A??-" * 2
    assert read(lambda s, ev: (s, None), rows)[0] == as_read
    # only the block the registration doubts, and only once 30 % of it is '?'
    off_first = np.repeat([True, False], 12)
    assert read(doubt_unregistered_blocks, rows, blocks=blocks, unregistered=off_first) == ("????A??-", None)
    a_third = [[FILL, BLANK_BOX, BLANK_BOX], DOUBT, [BLANK_BOX] * 3]
    assert read(doubt_unregistered_blocks, a_third, blocks=[0] * 3, unregistered=np.ones(9, bool))[0] == "???"
    a_quarter = [*a_third, [BLANK_BOX] * 3]  # a faint outline, read on nearly all rows: kept
    assert read(doubt_unregistered_blocks, a_quarter, blocks=[0] * 4, unregistered=np.ones(12, bool))[0] == "A?--"
    # nothing to go by: no block known doubtful
    assert read(doubt_unregistered_blocks, rows, blocks=blocks)[0] == as_read
