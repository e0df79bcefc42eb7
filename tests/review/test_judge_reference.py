"""`review judge --verdict-by reference` (src/tunesmith/review/judge_reference.py): each answer scored against the
item's reference with evaluation's metric, on small stores whose answers are chosen so the verdicts are known."""

from __future__ import annotations

import json

import pytest
import sacrebleu
from rouge_score import rouge_scorer

from tunesmith.errors import ConfigError, TunesmithError
from tunesmith.review.judge_reference import decide, judge_by_reference, score
from tunesmith.review.stats import review_stats
from tunesmith.review.store import ReviewStore

LONG = " ".join(f"word{n}" for n in range(100))
ROWS = [  # (reference, tuned's answer, base's answer)
    ("the cat sat on the mat", "the cat sat on the mat", "a dog ran far away"),  # tuned copies the reference
    ("the cat sat on the mat", "the cat sat", "the cat sat"),  # equal answers
    (LONG, LONG.rsplit(" ", 1)[0], LONG.rsplit(" ", 2)[0]),  # 99 and 98 of 100 words: ROUGE-L 0.005 apart
    (None, "anything", "something else"),  # no reference
    ("she reads a book today", "nothing alike here", "she reads a book"),  # base is closer
]


@pytest.fixture()
def scored_run(review_with_answers):
    """A review of `ROWS`, tuned (the item's first model) against base, reviewers ann and bob."""
    return review_with_answers(ROWS)


def verdicts(run, reviewer: str) -> dict[str, tuple[str, str | None, str]]:
    with ReviewStore.open(run) as store:
        prompts = {item.item_id: item.prompt for item in store.items()}
        return {prompts[j.item_id]: (j.verdict, j.winner, j.comment) for j in store.judgments()
                if j.reviewer == reviewer}


def test_the_answer_closer_to_the_reference_wins(scored_run):
    made = judge_by_reference(scored_run)
    assert made == {"reviewer": "judge:reference-rouge_l", "metric": "rouge_l", "tie_margin": 0.01, "judged": 4,
                    "ties": 2, "no_reference": 1, "remaining": 1}
    found = verdicts(scored_run, "judge:reference-rouge_l")
    assert set(found) == {"question 0", "question 1", "question 2", "question 4"}  # question 3 has no reference
    assert found["question 0"] == ("a", "tuned", "rouge_l against the reference: A 1, B 0: a")
    assert found["question 1"][:2] == ("tie", None) and found["question 1"][2].endswith(": tie (within 0.01)")
    assert found["question 2"][:2] == ("tie", None)  # 0.005 apart: within the default margin
    assert found["question 4"][:2] == ("b", "base")


def test_a_margin_of_zero_decides_every_difference(scored_run):
    made = judge_by_reference(scored_run, tie_margin=0, reviewer="judge:exact")
    assert (made["judged"], made["ties"]) == (4, 1)  # only the equal answers tie
    assert verdicts(scored_run, "judge:exact")["question 2"][:2] == ("a", "tuned")


def test_a_rerun_judges_only_what_is_left(scored_run):
    judge_by_reference(scored_run)
    before = verdicts(scored_run, "judge:reference-rouge_l")
    again = judge_by_reference(scored_run)
    assert (again["judged"], again["ties"], again["no_reference"], again["remaining"]) == (0, 0, 1, 1)
    assert verdicts(scored_run, "judge:reference-rouge_l") == before


def test_bleu_reads_the_margin_in_its_points(scored_run):
    assert decide("bleu", 50.0, 50.9).verdict == "tie"  # 0.01 of the 0-1 scale = 1 BLEU point
    assert decide("bleu", 50.0, 51.1).verdict == "b"
    assert decide("rouge_l", 0.5, 0.509).verdict == "tie" and decide("rouge_l", 0.511, 0.5).verdict == "a"
    made = judge_by_reference(scored_run, metric="bleu")
    assert made["reviewer"] == "judge:reference-bleu" and made["judged"] == 4
    found = verdicts(scored_run, "judge:reference-bleu")
    assert found["question 0"] == ("a", "tuned", "bleu against the reference: A 100, B 0: a")


def test_scores_are_evaluations_own(scored_run):
    """Checked against the libraries themselves: ROUGE-L F-measure with stemming ("jumped" matches "jumps"), and
    sacrebleu's BLEU of the one row, as `generation_metrics` scores a test set."""
    reference, answer = "the quick brown fox jumps over the dog", "a quick brown fox jumped over the dog"
    rouge = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True).score(reference, answer)["rougeL"].fmeasure
    assert score("rouge_l", reference, answer) == pytest.approx(rouge) == pytest.approx(7 / 8)
    assert score("bleu", reference, answer) == pytest.approx(sacrebleu.corpus_bleu([answer], [[reference]]).score)
    assert score("rouge_l", reference, reference) == 1.0
    assert score("bleu", reference, reference) == pytest.approx(100.0)


def test_stats_show_the_reference_judge_with_its_win_rate(scored_run):
    judge_by_reference(scored_run, tie_margin=0)
    with ReviewStore.open(scored_run) as store:
        stats = review_stats(store)
    comparison = stats["judges"]["judge:reference-rouge_l"]["comparisons"][0]
    assert (comparison["wins"], comparison["losses"], comparison["ties"]) == (2, 1, 1)
    assert comparison["win_rate"] == pytest.approx(2 / 3)
    low, high = comparison["win_interval"]
    assert low < 2 / 3 < high


@pytest.mark.parametrize(("options", "message"), [
    ({"metric": "exact_match"}, "config: --metric: is 'exact_match'; it must be one of: rouge_l, bleu"),
    ({"tie_margin": 1.0}, "config: --tie-margin: is 1; it must be a number from 0 (no ties) to below 1, on the "
                          "metric's 0–1 scale"),
    ({"tie_margin": -0.1}, "config: --tie-margin: is -0.1; it must be a number from 0"),
    ({"tie_margin": float("nan")}, "config: --tie-margin: is nan; it must be a number from 0"),
    ({"reviewer": "judge:\n"}, "config: --reviewer: reviewer name"),
])
def test_bad_options_are_named(scored_run, options, message):
    with pytest.raises(ConfigError) as caught:
        judge_by_reference(scored_run, **options)
    assert str(caught.value).startswith(message)


def test_a_person_s_name_is_refused(scored_run):
    with pytest.raises(TunesmithError, match="'ann' is a human reviewer of this review"):
        judge_by_reference(scored_run, reviewer="ann")


def test_the_command_judges_and_stats_report_it(scored_run, cli):
    code, out, error = cli("review", "judge", str(scored_run), "--verdict-by", "reference")
    assert (code, error) == (0, "")
    assert out == ("judge:reference-rouge_l: judged 4 items by rouge_l against the reference answer (order-free: "
                   "each answer is scored on its own, so no position bias; 2 within the tie margin 0.01, stored as "
                   "ties); 1 items without a reference left unjudged; 1 items left\n")
    code, out, _ = cli("review", "judge", str(scored_run), "--verdict-by", "reference", "--metric", "bleu",
                       "--tie-margin", "0")
    assert code == 0 and out.startswith("judge:reference-bleu: judged 4 items by bleu")
    code, out, _ = cli("review", "stats", str(scored_run), "--json")
    judges = json.loads(out)["judges"]
    assert set(judges) == {"judge:reference-rouge_l", "judge:reference-bleu"}
    rouge = judges["judge:reference-rouge_l"]["comparisons"][0]
    assert (rouge["wins"], rouge["losses"], rouge["ties"], rouge["win_rate"]) == (1, 1, 2, 0.5)
    code, out, _ = cli("review", "stats", str(scored_run))
    assert "Judge models" in out and "judge:reference-rouge_l" in out and "reference judge" in out


@pytest.mark.parametrize(("arguments", "message"), [
    (["--verdict-by", "reference", "--endpoint", "http://127.0.0.1:9"],
     "config: --endpoint: applies to a judge model (--verdict-by reply or logprobs) only; --verdict-by reference "
     "asks no model (leave out --endpoint)"),
    (["--verdict-by", "reference", "--model", "m"], "config: --model: applies to a judge model"),
    (["--verdict-by", "reference", "--api-key", "k"], "config: --api-key: applies to a judge model"),
    (["--verdict-by", "reference", "--timeout", "5"], "config: --timeout: applies to a judge model"),
    (["--verdict-by", "reference", "--tie-odds", "2"],
     "config: --tie-odds: applies to --verdict-by logprobs only (add --verdict-by logprobs)"),
    (["--endpoint", "http://127.0.0.1:9", "--model", "m", "--metric", "bleu"],
     "config: --metric: applies to --verdict-by reference only (add --verdict-by reference)"),
    (["--endpoint", "http://127.0.0.1:9", "--model", "m", "--verdict-by", "logprobs", "--tie-margin", "0.1"],
     "config: --tie-margin: applies to --verdict-by reference only (add --verdict-by reference)"),
    ([], "config: --endpoint: review judge --verdict-by reply needs the judge model's --endpoint (or use "
         "--verdict-by reference, which needs no model)"),
    (["--endpoint", "http://127.0.0.1:9", "--verdict-by", "logprobs"],
     "config: --model: review judge --verdict-by logprobs needs the judge model's --model"),
])
def test_options_of_the_other_mode_are_refused(scored_run, cli, arguments, message):
    code, out, error = cli("review", "judge", str(scored_run), *arguments)
    assert code == 2 and out == "" and error.startswith(f"tunesmith: error: {message}")
    with ReviewStore.open(scored_run) as store:
        assert store.judges == []  # refused before anything is stored
