"""Faults at the reference judge (`tunesmith review judge --verdict-by reference`): references that are missing or
blank, empty and huge answers, answers in a script ROUGE-L's tokenizer drops, two runs of the judge at once, and a
folder without a review. Each item is judged or counted once, and every refusal is one line."""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tunesmith.review.judge_reference import judge_by_reference
from tunesmith.review.store import ReviewPlan, ReviewPrompt, ReviewStore, create_database, database_path


@pytest.fixture(autouse=True)
def _absl_logging_off_the_capture():
    """rouge_score imports absl, whose log handler keeps the ``sys.stderr`` of that moment (pytest's capture, closed
    later); after each test it gets the real stderr back, or a later test's logging kills the run."""
    yield
    if absl_logging := sys.modules.get("absl.logging"):
        absl_logging.get_absl_handler().python_handler.stream = sys.__stderr__


def review_of(root, rows: list[tuple[str | None, str, str]]):
    """A review folder of one item per ``(reference, tuned's answer, base's answer)``; tuned is the first model."""
    prompts = [ReviewPrompt(location=f"test.jsonl:{n + 1}", system=None, prompt=f"question {n}", reference=reference,
                            label=None, answers={"tuned": tuned, "base": base})
               for n, (reference, tuned, base) in enumerate(rows)]
    path = database_path(root)
    path.parent.mkdir(parents=True)
    create_database(path, ReviewPlan(models=[("tuned", "tuned", None), ("base", "base", None)], prompts=prompts,
                                     items=[(n, "tuned", "base") for n in range(len(rows))],
                                     queues={"ann": [(n, "tuned", "base") for n in range(len(rows))]},
                                     rubric=[], show_reference=False, settings={"seed": 0}))
    return root


def winners(root) -> dict[str, str | None]:
    with ReviewStore.open(root) as store:
        prompts = {item.item_id: item.prompt for item in store.items()}
        return {prompts[j.item_id]: j.winner for j in store.judgments()}


def test_missing_and_blank_references_are_counted_not_judged(tmp_path):
    root = review_of(tmp_path / "run", [(None, "a", "b"), ("", "a", "b"), (" \n\t", "a", "b"), ("a b", "a b", "c")])
    made = judge_by_reference(root)
    assert (made["judged"], made["no_reference"], made["remaining"]) == (1, 3, 3)
    assert winners(root) == {"question 3": "tuned"}


def test_empty_answers_lose_or_tie(tmp_path):
    root = review_of(tmp_path / "run", [("the sun is hot", "", "the sun is hot today"), ("the sun is hot", "", "")])
    for metric in ("rouge_l", "bleu"):
        made = judge_by_reference(root, metric=metric)
        assert (made["judged"], made["ties"]) == (2, 1)
    with ReviewStore.open(root) as store:
        verdicts = sorted((j.reviewer, j.item_id, j.verdict) for j in store.judgments())
    assert verdicts == [("judge:reference-bleu", 1, "b"), ("judge:reference-bleu", 2, "tie"),
                        ("judge:reference-rouge_l", 1, "b"), ("judge:reference-rouge_l", 2, "tie")]


def test_a_huge_answer_is_scored_in_seconds_and_loses_to_the_reference(tmp_path):
    reference = "the capital of france is paris"
    huge = " ".join(["paris is a city in france and its capital"] * 4000)  # 36,000 words
    root = review_of(tmp_path / "run", [(reference, huge, reference)])
    started = time.monotonic()
    made = judge_by_reference(root)
    assert made["judged"] == 1 and time.monotonic() - started < 30
    assert winners(root) == {"question 0": "base"}


def test_answers_outside_rouge_ls_alphabet_tie_under_rouge_l(tmp_path):
    """rouge-score's tokenizer keeps a-z and 0-9 only: answers in other scripts score 0 and tie, however close to
    the reference; BLEU (sacrebleu's 13a tokenizer) still tells them apart."""
    reference = "東京 は 日本 の 首都 です"
    root = review_of(tmp_path / "run", [(reference, reference, "パリ は フランス の 首都")])
    assert judge_by_reference(root)["ties"] == 1
    assert judge_by_reference(root, metric="bleu")["ties"] == 0
    with ReviewStore.open(root) as store:
        verdicts = {j.reviewer: j.verdict for j in store.judgments()}
    assert verdicts == {"judge:reference-rouge_l": "tie", "judge:reference-bleu": "a"}


def test_a_folder_without_a_review_is_refused_in_one_line(tmp_path, cli):
    (tmp_path / "run").mkdir()
    code, out, error = cli("review", "judge", str(tmp_path / "run"), "--verdict-by", "reference")
    assert code == 2 and out == "" and error.startswith("tunesmith: error: ") and "has no review" in error


def test_two_runs_of_the_judge_at_once_judge_every_item_once(tmp_path):
    # Two `review judge --verdict-by reference` on one review at the same time (two terminals, a retried job): the
    # judge is added once, every item gets one verdict, and neither run fails on the items the other stored first.
    rows = [(f"answer number {n}", f"answer number {n}", f"something else {n}") for n in range(40)]
    root = review_of(tmp_path / "run", rows)
    barrier = threading.Barrier(2)

    def judge():
        barrier.wait()
        return judge_by_reference(root)

    with ThreadPoolExecutor(2) as pool:
        made = [future.result() for future in [pool.submit(judge), pool.submit(judge)]]
    assert sum(result["judged"] for result in made) == 40 and all(result["remaining"] == 0 for result in made)
    with ReviewStore.open(root) as store:
        judged = [j.item_id for j in store.judgments() if j.reviewer == "judge:reference-rouge_l"]
        assert store.judges == ["judge:reference-rouge_l"]
    assert sorted(judged) == sorted(set(judged)) and len(judged) == 40
    assert set(winners(root).values()) == {"tuned"}
