"""The `tunesmith review` commands (src/tunesmith/cli/review_commands.py), run in-process on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tunesmith.review.store import ReviewStore


def test_create_stats_judge_export(tiny_runs, cli, stub_judge, judge_for):
    tuned, _ = tiny_runs
    code, out, error = cli("review", "create", str(tuned), "--items", "3", "--reviewers", "ann, bob, cy",
                           "--overlap", "1", "--seed", "7")
    assert (code, error) == (0, "")
    assert "tuned-run, base (3 prompts, 3 items; answers generated: tuned-run 3, base 3)" in out
    assert "queues: ann 2, bob 2, cy 1 (items everyone judges: 1)" in out  # 1 shared; the 2 others one each
    with ReviewStore.open(tuned) as store:
        assert store.settings == {"task": "generation", "seed": 7, "overlap": 1}
        assert store.reviewers == ["ann", "bob", "cy"] and store.tuned == "tuned-run"
        for reviewer in store.reviewers:
            item = store.next_item(reviewer)
            judge_for(store, reviewer, item.item_id, "tuned-run")

    code, out, error = cli("review", "create", str(tuned))
    assert code == 2 and "exists already, with its judgments" in error

    url, _ = stub_judge
    code, out, _ = cli("review", "judge", str(tuned), "--endpoint", url, "--model", "stub")
    assert code == 0 and out.startswith("judge:stub: judged 3 items")

    code, out, _ = cli("review", "stats", str(tuned))
    assert code == 0 and "tuned-run against each model" in out and "Judge models" in out
    code, out, _ = cli("review", "stats", str(tuned), "--json")
    stats = json.loads(out)
    assert stats["agreement"]["method"] == "fleiss" and stats["judgments"] == 3

    code, out, _ = cli("review", "export", str(tuned), "--format", "csv")
    assert code == 0 and out.startswith("6 judgments: ")
    code, _, error = cli("review", "export", str(tuned), "--format", "csv")
    assert code == 2 and "--overwrite" in error

    # The gold completions of the test rows are the items' references: the model-free judge scores both answers.
    code, out, error = cli("review", "judge", str(tuned), "--verdict-by", "reference")
    assert (code, error) == (0, "")
    assert out.startswith("judge:reference-rouge_l: judged 3 items by rouge_l against the reference answer (")
    assert out.endswith("; 0 items without a reference left unjudged; 0 items left\n")
    code, out, _ = cli("review", "stats", str(tuned), "--json")
    judge = json.loads(out)["judges"]["judge:reference-rouge_l"]
    comparison = judge["comparisons"][0]
    assert judge["judgments"] == 3 and comparison["wins"] + comparison["losses"] + comparison["ties"] == 3


def test_create_errors_name_the_key(tiny_runs, cli):
    tuned, _ = tiny_runs
    code, _, error = cli("review", "create", str(tuned), "--overlap", "2.5")
    assert code == 2 and error.startswith("tunesmith: error: config: review.overlap: 2.5 is neither a count")
    code, _, error = cli("review", "create", str(tuned), "--set", "train.seed=3")
    assert code == 2 and "train.seed: is not a review setting" in error
    code, _, error = cli("review", "stats", str(tuned))
    assert code == 2 and "has no review" in error


def test_create_of_a_classification_review_reports_the_agreement(spam_run, cli):
    code, out, error = cli("review", "create", str(spam_run.root), "--items", "50", "--reviewers", "ann")
    assert (code, error) == (0, "")
    assert ("sample: the models agree on 60% of 10 test prompts (6); 4 items drawn from the 4 where they disagree"
            in out)


@pytest.fixture()
def letter_model(tmp_path, chatty_model_dir) -> Path:
    """The chatty tiny model whose output layer knows two tokens, "A" and "B", with opposite weights: one of them
    leads every next-token distribution (the rest share a logit of 0) and the other is below it, so a judge asked
    for one letter always gets one, and which depends on the prompt."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path / "letter-judge"
    model = AutoModelForCausalLM.from_pretrained(chatty_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(chatty_model_dir)
    letter_a, letter_b = tokenizer.convert_tokens_to_ids(["A", "B"])
    weights = torch.zeros_like(model.lm_head.weight)
    direction = torch.randn(weights.shape[1], generator=torch.Generator().manual_seed(3))
    weights[letter_a], weights[letter_b] = direction, -direction
    model.config.tie_word_embeddings = False
    model.config.max_position_embeddings = 2048  # the judge's instructions are ~1000 tiny-tokenizer tokens
    model.lm_head.weight = torch.nn.Parameter(weights)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_a_served_tiny_model_judges_by_its_letter_probabilities(review_run, letter_model, start_server, cli):
    from tunesmith.serve.served import load_served

    url, _ = start_server(lambda: load_served([str(letter_model)]))
    code, out, error = cli("review", "judge", str(review_run), "--endpoint", url, "--model", letter_model.name,
                           "--verdict-by", "logprobs")
    assert (code, error) == (0, "")
    assert out.startswith("judge:letter-judge: judged 4 items by its letter probabilities (")
    assert "0 items with neither letter among its top tokens; 0 items left" in out
    with ReviewStore.open(review_run) as store:
        judgments = store.judgments()
    assert len(judgments) == 4 and all(j.comment.startswith("p(A), p(B) shown A,B: ") for j in judgments)

    code, out, _ = cli("review", "stats", str(review_run), "--json")
    judge = json.loads(out)["judges"]["judge:letter-judge"]
    comparison = judge["comparisons"][0]
    assert judge["judgments"] == 4 and comparison["wins"] + comparison["losses"] + comparison["ties"] == 4
    if comparison["decisive"]:
        low, high = comparison["win_interval"]
        assert low <= comparison["win_rate"] <= high
    code, out, _ = cli("review", "stats", str(review_run))
    assert "Judge models" in out and "judge:letter-judge" in out


def test_judge_options_are_checked(review_run, cli):
    code, _, error = cli("review", "judge", str(review_run), "--endpoint", "http://127.0.0.1:9", "--model", "m",
                         "--tie-odds", "1.5")
    assert code == 2 and "--tie-odds: applies to --verdict-by logprobs only" in error
    code, _, error = cli("review", "judge", str(review_run), "--endpoint", "http://127.0.0.1:9", "--model", "m",
                         "--verdict-by", "logprobs", "--tie-odds", "0.9")
    assert code == 2 and "--tie-odds: is 0.9; it must be a number of at least 1" in error
