"""The `tunesmith review` commands (src/tunesmith/cli/review_commands.py), run in-process on the tiny model."""

from __future__ import annotations

import json

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
