"""Review statistics on judgments whose answers are known: win rates with Wilson intervals, the sign test, rubric
means, Cohen's and Fleiss' kappa, Bradley-Terry strengths and the disagreements listed."""

from __future__ import annotations

import math

import pytest

from tunesmith.review.stats import bradley_terry, fleiss_kappa, review_stats
from tunesmith.review.store import ReviewStore


def test_win_rate_interval_and_sign_test(make_review, judge_for):
    run = make_review(num_prompts=10, reviewers=("ann",))
    with ReviewStore.open(run) as store:
        outcomes = ["tuned"] * 7 + ["base"] * 2 + ["both_bad"]
        for (item_id, _, _), better in zip(store.queue("ann"), outcomes):
            judge_for(store, "ann", item_id, better)
        stats = review_stats(store)
    [versus_base] = stats["comparisons"]
    assert (versus_base["wins"], versus_base["losses"], versus_base["ties"], versus_base["both_bad"]) == (7, 2, 0, 1)
    assert versus_base["decisive"] == 9 and versus_base["win_rate"] == 7 / 9  # both bad is not a decision
    # Wilson 95% for 7/9: (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n), z = 1.96.
    assert versus_base["win_interval"] == pytest.approx([0.4526, 0.9368], abs=1e-4)
    # Sign test, ties out: 7 wins of 9; two-sided P = 2·P(X ≤ 2) = 2·(1 + 9 + 36)/2⁹.
    assert versus_base["sign_test_p"] == pytest.approx(92 / 512)
    assert stats["agreement"]["method"] is None and stats["bradley_terry"] is None


def test_win_rate_is_wins_over_decisive_items_with_ties_beside(make_review, judge_for):
    """9 wins to 1 loss is 90%, however many ties: the ties and both-bad are counted beside the rate (the issue's
    case read 34.6%, 9 of 26)."""
    run = make_review(num_prompts=28, reviewers=("ann",))
    with ReviewStore.open(run) as store:
        outcomes = ["tuned"] * 9 + ["base"] + ["tie"] * 16 + ["both_bad"] * 2
        for (item_id, _, _), better in zip(store.queue("ann"), outcomes):
            judge_for(store, "ann", item_id, better)
        [versus_base] = review_stats(store)["comparisons"]
    assert {key: versus_base[key] for key in ("items", "wins", "losses", "ties", "both_bad", "decisive")} == {
        "items": 28, "wins": 9, "losses": 1, "ties": 16, "both_bad": 2, "decisive": 10}
    assert versus_base["win_rate"] == 0.9
    assert versus_base["win_interval"] == pytest.approx([0.5958, 0.9821], abs=1e-4)  # Wilson 95%, n = 10
    assert versus_base["sign_test_p"] == pytest.approx(2 * 11 / 1024)  # 2·P(X ≤ 1), X ~ Bin(10, ½)


def test_only_ties_have_no_win_rate(make_review, judge_for):
    run = make_review(num_prompts=2, reviewers=("ann",))
    with ReviewStore.open(run) as store:
        for item_id, _, _ in store.queue("ann"):
            judge_for(store, "ann", item_id, "tie")
        [versus_base] = review_stats(store)["comparisons"]
    assert (versus_base["decisive"], versus_base["win_rate"], versus_base["win_interval"]) == (0, None, None)
    assert versus_base["sign_test_p"] is None


def test_kappa_on_few_shared_items_says_too_few(make_review, judge_for):
    """Below 20 shared items a kappa is kept but flagged (its 95% interval is wider than any reading band)."""
    run = make_review(num_prompts=20)
    with ReviewStore.open(run) as store:
        for item_id, (ann, bob) in enumerate([("tuned", "tuned"), ("base", "base"), ("tuned", "tie")], start=1):
            judge_for(store, "ann", item_id, ann)
            judge_for(store, "bob", item_id, bob)
        few = review_stats(store)["agreement"]
        for item_id in range(4, 21):
            judge_for(store, "ann", item_id, "tuned" if item_id % 3 else "base")
            judge_for(store, "bob", item_id, "tuned" if item_id % 3 else "base")
        enough = review_stats(store)["agreement"]
    assert few["items"] == 3 and few["kappa"] is not None and few["too_few"]
    assert few["note"] == "on 3 shared items: too few to judge agreement (20 or more needed)"
    assert enough["items"] == 20 and enough["note"] is None and not enough["too_few"]


def test_overlap_items_count_once(make_review, judge_for):
    """Two people agreeing on an item make one win, not two; a split item is a tie."""
    run = make_review(num_prompts=2)
    with ReviewStore.open(run) as store:
        for reviewer in ("ann", "bob"):
            judge_for(store, reviewer, 1, "tuned")
        judge_for(store, "ann", 2, "tuned")
        judge_for(store, "bob", 2, "base")
        [versus_base] = review_stats(store)["comparisons"]
    assert (versus_base["items"], versus_base["wins"], versus_base["ties"], versus_base["losses"]) == (2, 1, 1, 0)


def test_rubric_means_with_t_intervals(make_review, judge_for):
    run = make_review(num_prompts=3, reviewers=("ann",))
    with ReviewStore.open(run) as store:
        for item_id, score in zip([1, 2, 3], [5, 4, 3]):
            judge_for(store, "ann", item_id, "tuned", scores={"tuned": {"correct": score}, "base": {"correct": 2}})
        rubric = review_stats(store)["rubric"]
    tuned = rubric["tuned"]["correct"]
    half = 4.302653 * 1 / math.sqrt(3)  # t(0.975, 2 df) x sd 1 / sqrt(3)
    assert (tuned["n"], tuned["mean"]) == (3, 4.0)
    assert tuned["interval"] == pytest.approx([4 - half, 4 + half], abs=1e-5)
    assert rubric["base"]["correct"] == {"n": 3, "mean": 2.0, "interval": [2.0, 2.0]}
    assert rubric["tuned"]["helpful"] == {"n": 0, "mean": None, "interval": None}


def test_cohen_kappa_by_hand(make_review, judge_for):
    # (ann, bob) on 10 items: 4 both tuned, 1 tuned/base, 2 both base, 1 base/tuned, 1 both tie, 1 tie/tuned.
    pairs = [("tuned", "tuned")] * 4 + [("tuned", "base"), ("base", "base"), ("base", "base"), ("base", "tuned"),
                                        ("tie", "tie"), ("tie", "tuned")]
    run = make_review(num_prompts=10)
    with ReviewStore.open(run) as store:
        for item_id, (ann, bob) in enumerate(pairs, start=1):
            judge_for(store, "ann", item_id, ann)
            judge_for(store, "bob", item_id, bob)
        agreement = review_stats(store)["agreement"]
    # observed 7/10; chance: ann tuned 5, base 3, tie 2; bob tuned 6, base 3, tie 1 → (30 + 9 + 2)/100.
    assert agreement["method"] == "cohen" and agreement["items"] == 10 and agreement["observed"] == 0.7
    assert agreement["kappa"] == pytest.approx((0.7 - 0.41) / (1 - 0.41))


def test_fleiss_kappa_three_reviewers_by_hand(make_review, judge_for):
    verdicts = [("tuned",) * 3, ("tuned", "tuned", "base"), ("base",) * 3, ("tie", "base", "base")]
    run = make_review(num_prompts=4, reviewers=("ann", "bob", "cy"))
    with ReviewStore.open(run) as store:
        for item_id, row in enumerate(verdicts, start=1):
            for reviewer, better in zip(("ann", "bob", "cy"), row):
                judge_for(store, reviewer, item_id, better)
        agreement = review_stats(store)["agreement"]
    # P̄ = (1 + 1/3 + 1 + 1/3)/4 = 2/3; category shares 5/12, 6/12, 1/12 → P̄e = 62/144; κ = (2/3 - 62/144)/(82/144).
    assert agreement["method"] == "fleiss" and agreement["items"] == 4
    assert agreement["kappa"] == pytest.approx(34 / 82)


def test_fleiss_kappa_matches_the_published_example():
    """Wikipedia's "Fleiss' kappa" worked example: 10 subjects, 14 raters, 5 categories, kappa 0.210."""
    counts = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
              [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    ratings = [[category for category, count in enumerate(row, start=1) for _ in range(count)] for row in counts]
    assert fleiss_kappa(ratings) == pytest.approx(0.210, abs=5e-4)


def test_bradley_terry_orders_models_and_solves_its_equations(make_review, judge_for):
    run = make_review(num_prompts=6, reviewers=("ann",), models=("tuned", "base", "r2"))
    with ReviewStore.open(run) as store:
        for item in store.items():
            pair = {item.first, item.second}
            # tuned beats both on 5 of 6 prompts; base beats r2 on 4 of 6; ties elsewhere.
            if pair == {"tuned", "base"} or pair == {"tuned", "r2"}:
                better = "tuned" if item.prompt_id % 6 else "tie"
            else:
                better = "base" if item.prompt_id % 3 else "r2"
            judge_for(store, "ann", item.item_id, better)
        stats = review_stats(store)
    strength = stats["bradley_terry"]
    assert strength["tuned"] > strength["base"] > strength["r2"]
    assert sum(strength.values()) == pytest.approx(1)
    # The maximum-likelihood condition: each model's expected wins equal its observed wins (ties half each).
    wins = {"tuned": 10 + 0.5 + 0.5, "base": 0.5 + 4, "r2": 0.5 + 2}
    for model, observed in wins.items():
        expected = sum(6 * strength[model] / (strength[model] + strength[other])
                       for other in strength if other != model)
        assert expected == pytest.approx(observed, abs=1e-6)
    assert [c["against"] for c in stats["comparisons"]] == ["base", "r2"]


def test_bradley_terry_of_two_models_is_the_win_share():
    strength = bradley_terry([("x", "y", 1.0)] * 3 + [("y", "x", 1.0)], ["x", "y"])
    assert strength["x"] / (strength["x"] + strength["y"]) == pytest.approx(0.75)


def test_disagreements_listed_strongest_first(make_review, judge_for):
    run = make_review(num_prompts=3)
    with ReviewStore.open(run) as store:
        judge_for(store, "ann", 1, "tuned")
        judge_for(store, "bob", 1, "tuned")
        judge_for(store, "ann", 2, "tuned", comment="clearer")
        judge_for(store, "bob", 2, "base", comment="shorter")
        judge_for(store, "ann", 3, "tie")
        disagreements = review_stats(store)["disagreements"]
    [listed] = disagreements
    assert listed["item_id"] == 2 and listed["disagreement"] == 0.5 and listed["prompt"] == "question 1"
    assert listed["verdicts"] == {"ann": "tuned better", "bob": "base better"}
    assert listed["comments"] == {"ann": "clearer", "bob": "shorter"}
