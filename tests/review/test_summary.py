"""The review statistics as text (`tunesmith.review.summary`): W–L–T with the win rate over decisive items, the
small-sample note on kappa, the classification sample, and the disagreement table's alignment."""

from __future__ import annotations

from tunesmith.document import Document, Section, Table, render_markdown, render_text
from tunesmith.review.stats import review_stats
from tunesmith.review.store import ReviewStore
from tunesmith.review.summary import agreement_text, comparison_sentence, stats_blocks


def nine_to_one(make_review, judge_for) -> dict:
    """ann: 9 wins, 1 loss, 16 ties, 2 both bad; bob shares 3 items with her and disagrees on 2."""
    run = make_review(num_prompts=28)
    with ReviewStore.open(run) as store:
        outcomes = ["tuned"] * 9 + ["base"] + ["tie"] * 16 + ["both_bad"] * 2
        for item_id, better in enumerate(outcomes, start=1):
            judge_for(store, "ann", item_id, better)
        for item_id, better in ((1, "tuned"), (2, "base"), (10, "tie")):
            judge_for(store, "bob", item_id, better)
        return review_stats(store)


def text_of(stats: dict) -> str:
    return render_text(Document("review", sections=[Section("", stats_blocks(stats))]))


def test_comparison_reads_w_l_t_and_the_rate_over_decisive_items(make_review, judge_for):
    stats = nine_to_one(make_review, judge_for)
    text = text_of(stats)
    # Item 1 (both: tuned) stays a win, item 2 (tuned / base) becomes a tie, item 10 (base / tie) stays a loss.
    assert ("tuned against base: 8–1–17 (wins–losses–ties), 2 both bad; it wins 89% of the 9 decisive items "
            "(95% CI 57%–98%), sign test p = 0.0391.") in text
    row = next(line for line in text.splitlines() if line.startswith("base "))
    assert [cell.strip() for cell in row.split("|")] == ["base", "28", "8–1–17", "2", "89% [57%, 98%]", "9",
                                                        "0.0391"]
    assert "34.6%" not in text and "wins over the decisive items" in text


def test_sentence_for_nine_wins_one_loss():
    row = {"against": "base", "items": 26, "wins": 9, "losses": 1, "ties": 16, "both_bad": 0, "decisive": 10,
           "win_rate": 0.9, "win_interval": [0.5958, 0.9821], "sign_test_p": 0.0215}
    assert comparison_sentence("sms", row) == ("sms against base: 9–1–16 (wins–losses–ties); it wins 90% of the 10 "
                                               "decisive items (95% CI 60%–98%), sign test p = 0.0215.")
    ties_only = {**row, "wins": 0, "losses": 0, "decisive": 0, "win_rate": None, "win_interval": None}
    assert comparison_sentence("sms", ties_only).endswith("no decisive items, so no win rate.")


def test_kappa_on_three_items_carries_the_note(make_review, judge_for):
    agreement = nine_to_one(make_review, judge_for)["agreement"]
    assert agreement_text(agreement).endswith("; on 3 shared items: too few to judge agreement (20 or more needed)")


def test_classification_sample_is_said(make_review, judge_for):
    stats = nine_to_one(make_review, judge_for) | {"sampling": {
        "sentence": "the models agree on 84% of 1,000 test prompts (840); 50 items drawn from the 160 where they "
                    "disagree"}}
    assert ("sample: the models agree on 84% of 1,000 test prompts (840); 50 items drawn from the 160 where they "
            "disagree (the rates below are over these disagreements") in text_of(stats)


def test_disagreement_table_left_aligns_text_and_right_aligns_numbers(make_review, judge_for):
    stats = nine_to_one(make_review, judge_for)
    [table] = [block for block in stats_blocks(stats) if isinstance(block, Table) and "strongest" in block.caption]
    assert table.header == ["location", "item", "prompt", "verdicts"]
    lines = render_text(Document("d", sections=[Section("", [table])])).splitlines()
    rows = [line for line in lines if line.lstrip().startswith("test.jsonl")]
    cells = [line.split(" | ") for line in rows]
    width = max(len(cell[1]) for cell in cells)
    assert all(cell[2].startswith("question") and cell[3].startswith("ann:") for cell in cells)  # text: left
    assert [cell[1] for cell in cells] == [cell[1].strip().rjust(width) for cell in cells]  # numbers: right
    assert "|---|---:|---|---|" in render_markdown(Document("d", sections=[Section("", [table])]))
