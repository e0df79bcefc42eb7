"""`review create`: a seeded, stratified sample; answers reused from predictions.jsonl or generated; blind queues
with overlap; an existing review is replaced only when asked."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from tunesmith.config.review_section import ReviewConfig
from tunesmith.data.example import Example
from tunesmith.data.task import Task
from tunesmith.errors import TunesmithError
from tunesmith.review.create import (
    Contender,
    contenders_of,
    create_review,
    review_plan,
    sample_prompts,
    share_items,
)
from tunesmith.review.export import export_judgments
from tunesmith.review.store import ReviewConflict, ReviewStore
from tunesmith.run_dir import RunDir

CLASSIFICATION = Task.of("classification", ["ham", "other", "spam"])


def labelled(counts: dict[str, int]) -> list[Example]:
    rows = [label for label, count in counts.items() for _ in range(count)]
    return [Example(messages=({"role": "user", "content": f"text {n}"}, {"role": "assistant", "content": label}),
                    location=f"test.jsonl:{n + 1}", label=label) for n, label in enumerate(rows)]


def test_sample_keeps_each_label_share():
    examples = labelled({"ham": 30, "spam": 9, "other": 1})
    sample = sample_prompts(examples, CLASSIFICATION, 10, seed=3)
    # 10 of 40: ham 7.5, spam 2.25, other 0.25 → 7 + 2 + 0, and the largest leftover (ham's .5) gets the last one.
    assert Counter(example.label for example in sample) == {"ham": 8, "spam": 2}
    assert sample == sorted(sample, key=examples.index)  # test order
    assert sample == sample_prompts(examples, CLASSIFICATION, 10, seed=3)
    assert sample != sample_prompts(examples, CLASSIFICATION, 10, seed=4)


def test_sample_of_generation_is_plain_and_complete_when_small():
    examples = labelled({"x": 5, "y": 5})
    assert len(sample_prompts(examples, Task.of("generation"), 4, seed=0)) == 4
    assert sample_prompts(examples, Task.of("generation"), 50, seed=0) == examples


def test_queues_share_the_overlap_and_split_the_rest():
    queues = share_items(20, ["ann", "bob", "cy"], overlap=5, rng=random.Random(0))
    shared = set(queues["ann"]) & set(queues["bob"]) & set(queues["cy"])
    assert len(shared) == 5
    own = [set(queue) - shared for queue in queues.values()]
    assert sorted(len(items) for items in own) == [5, 5, 5]
    assert set().union(*own) | shared == set(range(20)) and sum(map(len, own)) == 15  # each other item once
    assert share_items(7, ["solo"], overlap=2, rng=random.Random(0))["solo"].__len__() == 7


def test_plan_stores_both_orders_and_pairs_of_three_models():
    examples = labelled({"a": 12})
    contenders = [Contender(name, role, None, name) for name, role in [("t", "tuned"), ("base", "base"),
                                                                        ("r2", "run")]]
    answers = {contender.name: [f"{contender.name}{n}" for n in range(12)] for contender in contenders}
    plan = review_plan(examples, contenders, answers, ReviewConfig(reviewers=["ann", "bob"], overlap=6),
                       Task.of("generation"))
    assert len(plan.items) == 36  # 12 prompts x 3 pairs (Bradley-Terry needs every pair)
    assert Counter((first, second) for _, first, second in plan.items) == {("t", "base"): 12, ("t", "r2"): 12,
                                                                          ("base", "r2"): 12}
    for queue in plan.queues.values():
        for index, side_a, side_b in queue:
            assert {side_a, side_b} == set(plan.items[index][1:])
    sides = Counter(side_a == plan.items[index][1] for queue in plan.queues.values() for index, side_a, _ in queue)
    assert sides[True] > 5 and sides[False] > 5  # both orders occur
    assert plan.settings == {"task": "generation", "seed": 0, "overlap": 6}


def write_predictions(run_root, rows: int, tuned: str = "tuned", base: str | None = "base"):
    lines = [{"location": f"{run_root.parent}/test.jsonl:{n + 1}", "prompt": f"Write about the sea {n}.",
              "reference": f"The waves roll in {n}.", "tuned_prediction": f"{tuned} {n}",
              "base_prediction": None if base is None else f"{base} {n}", "tuned_correct": False,
              "base_correct": None} for n in range(rows)]
    RunDir(run_root).predictions.write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_create_reuses_predictions_and_refuses_to_overwrite(tiny_runs):
    tuned, _ = tiny_runs
    write_predictions(tuned, 6)
    made = create_review(RunDir(tuned))
    assert made["generated"] == {"tuned-run": 0, "base": 0} and made["prompts"] == 4 and made["items"] == 4
    assert made["queues"] == {"ann": 3, "bob": 3} and made["overlap"] == 2
    with ReviewStore.open(tuned) as store:
        assert store.models == {"tuned-run": "tuned", "base": "base"}
        item = store.next_item("ann")
        number = item.prompt.split()[-1].rstrip(".")
        assert {item.answer_a, item.answer_b} == {f"tuned {number}", f"base {number}"}
        store.judge("ann", item.item_id, "a")
    with pytest.raises(ReviewConflict, match="exists already, with its judgments.*--overwrite"):
        create_review(RunDir(tuned))
    with ReviewStore.open(tuned) as store:
        assert len(store.judgments()) == 1  # untouched
    exported, _ = export_judgments(tuned, "jsonl")  # what the error's hint says to do first
    create_review(RunDir(tuned), overwrite=True)
    with ReviewStore.open(tuned) as store:
        assert store.judgments() == []
    assert len(exported.read_text().splitlines()) == 1  # the export outlives the review it came from


def test_create_generates_what_predictions_lack(tiny_runs):
    """The tuned model's answers are in predictions.jsonl, the base model's and the other run's are not: those are
    generated with evaluation's code, and the stored answers are what it generates."""
    from tunesmith.models import load_tuned_model
    from tunesmith.predict import generate

    tuned, other = tiny_runs
    write_predictions(tuned, 6, base=None)
    settings = ReviewConfig(items=3, reviewers=["ann"])
    made = create_review(RunDir(tuned), against=["base", str(other)], settings=settings)
    assert made["generated"] == {"tuned-run": 0, "base": 3, "other-run": 3}
    assert made["items"] == 9
    with ReviewStore.open(tuned) as store:
        items = store.items()
        assert store.models == {"tuned-run": "tuned", "base": "base", "other-run": "run"}
    model, tokenizer = load_tuned_model(other, merge=True)
    prompts = [[{"role": "user", "content": item.prompt}] for item in items if item.second == "other-run"]
    expected = generate(model, tokenizer, prompts[:3], max_new_tokens=4, batch_size=2)
    assert [item.answers["other-run"] for item in items if item.first == "tuned-run"
            and item.second == "other-run"] == expected


def test_create_names_bad_comparisons(tiny_runs, tmp_path):
    tuned, _ = tiny_runs
    with pytest.raises(TunesmithError, match="with itself"):
        create_review(RunDir(tuned), against=[str(tuned)])
    with pytest.raises(TunesmithError, match="not a tunesmith run folder"):
        create_review(RunDir(tuned), against=[str(tmp_path)])
    with pytest.raises(TunesmithError, match="at least one other model"):
        create_review(RunDir(tuned), against=[])


def test_another_runs_predictions_are_reused_where_the_prompt_matches(tiny_runs):
    """A line of the other run's predictions.jsonl counts only for the same row with the same prompt; the rest is
    generated (here: the row whose prompt differs)."""
    tuned, other = tiny_runs
    write_predictions(tuned, 6)
    write_predictions(other, 6, tuned="other", base=None)
    lines = RunDir(other).predictions.read_text().splitlines()
    changed = json.loads(lines[2]) | {"prompt": "Write about the hills 2."}
    RunDir(other).predictions.write_text("\n".join([*lines[:2], json.dumps(changed), *lines[3:]]) + "\n")
    made = create_review(RunDir(tuned), against=[str(other)], settings=ReviewConfig(items=6, reviewers=["ann"]))
    assert made["generated"] == {"tuned-run": 0, "other-run": 1}
    with ReviewStore.open(tuned) as store:
        answers = [item.answers["other-run"] for item in store.items()]
    assert [answer for n, answer in enumerate(answers) if n != 2] == [f"other {n}" for n in (0, 1, 3, 4, 5)]
    assert answers[2] != "other 2"


def test_classification_reviews_only_where_the_labels_differ(spam_run):
    made = create_review(spam_run, settings=ReviewConfig(items=3, reviewers=["ann"]))
    assert made["sampling"] == ("the models agree on 60% of 10 test prompts (6); 3 items drawn from the 4 where "
                                "they disagree")
    assert made["generated"] == {"spam-run": 0, "base": 0} and made["items"] == 3
    with ReviewStore.open(spam_run.root) as store:
        assert {(item.answers["spam-run"], item.answers["base"]) for item in store.items()} == {("spam", "ham")}
        assert store.settings["sampling"] == {"pool": "disagreements", "test_prompts": 10, "agree": 6,
                                              "disagree": 4, "drawn": 3, "sentence": made["sampling"]}


def test_classification_where_the_models_always_agree_is_refused(spam_run):
    lines = [json.loads(line) for line in spam_run.predictions.read_text().splitlines()]
    spam_run.predictions.write_text("".join(json.dumps({**line, "base_prediction": line["tuned_prediction"].upper()})
                                            + "\n" for line in lines))  # the same labels, written otherwise
    with pytest.raises(TunesmithError, match=r"nothing to review: the models agree on 100% of 10 test prompts \(10\), "
                                             r"so every item would be a tie"):
        create_review(spam_run, settings=ReviewConfig(items=3, reviewers=["ann"]))
    assert not ReviewStore.exists(spam_run.root)


def test_classification_plan_keeps_only_the_pairs_that_disagree():
    examples = labelled({"ham": 3})
    contenders = [Contender(name, role, None, name) for name, role in [("t", "tuned"), ("base", "base"),
                                                                        ("r2", "run")]]
    answers = {"t": ["spam", "ham", "spam"], "base": ["ham", "ham", "spam"], "r2": ["spam", "spam", "ham"]}
    plan = review_plan(examples, contenders, answers, ReviewConfig(reviewers=["ann"]), CLASSIFICATION)
    assert plan.items == [(0, "t", "base"), (0, "base", "r2"), (1, "t", "r2"), (1, "base", "r2"), (2, "t", "r2"),
                          (2, "base", "r2")]


def test_the_base_of_a_run_with_init_from_is_the_run_it_continues_from(tiny_runs):
    tuned, sft = tiny_runs
    config = RunDir(tuned).config()
    # model.init_from set with model_copy: a stand-in until the schema has it (issue 26's other parts)
    continued = config.model_copy(update={"model": config.model.model_copy(update={"init_from": sft})})
    contenders = contenders_of(RunDir(tuned), continued, ["base"])
    assert [(contender.name, contender.role) for contender in contenders] == [("tuned-run", "tuned"),
                                                                              ("other-run", "run")]
    assert contenders[1].run.root == sft and contenders[1].source == str(sft)
    plain = contenders_of(RunDir(tuned), config, ["base"])
    assert [(contender.name, contender.role) for contender in plain] == [("tuned-run", "tuned"), ("base", "base")]
