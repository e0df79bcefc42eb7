"""The report's "Preference" section: the held-out pairs before and after, the task measured again against the SFT
model, and a judge model's win rate once the run's review was judged."""

from __future__ import annotations

from datetime import datetime

from tunesmith.config import save_config, validate_config
from tunesmith.document import Document, render_markdown
from tunesmith.json_files import write_json
from tunesmith.report.build import collect_report
from tunesmith.report.preference_section import preference_section
from tunesmith.review.store import ReviewPlan, ReviewPrompt, ReviewStore, create_database, database_path
from tunesmith.run_dir import RunDir

EVAL = {"task": "classification", "num_examples": 80, "base": {"accuracy": 0.9}, "tuned": {"accuracy": 0.88},
        "init_from": {"run": "sft", "label": "SFT model (runs/sft)", "task": "classification", "test_rows": 80},
        "columns": ["SFT model (runs/sft)", "tuned"],
        "preference": {"pairs": 40, "method": "dpo", "beta": 0.1, "confidence": 0.95,
                       "tuned": {"accuracy": 0.8, "accuracy_ci": [0.65, 0.9], "margin_mean": 0.42,
                                 "margin_ci": [0.3, 0.55]},
                       "reference": {"accuracy": 0.55, "accuracy_ci": [0.4, 0.69], "margin_mean": 0.1,
                                     "margin_ci": [-0.2, 0.4]},
                       "margins": {"tuned": "dpo implicit reward of the chosen answer minus the rejected one's",
                                   "reference": "log p(chosen) - log p(rejected) under the reference model, in nats"}}}


def markdown(section) -> str:
    return render_markdown(Document("r", "", [section]))


def test_the_section_shows_before_and_after_with_intervals_and_the_task_against_the_sft_model(tmp_path):
    text = markdown(preference_section(EVAL, RunDir(tmp_path)))
    assert r"| reference (before) | 0.5500 \[0.4000, 0.6900\] | 0.1000 \[-0.2000, 0.4000\] |" in text
    assert r"| tuned (after) | 0.8000 \[0.6500, 0.9000\] | 0.4200 \[0.3000, 0.5500\] |" in text
    assert "95% intervals" in text
    assert "| metric | SFT model (runs/sft) | tuned | delta |" in text
    assert "| accuracy | 0.9000 | 0.8800 | -0.0200 |" in text


def test_no_block_no_section_and_a_skipped_block_says_why(tmp_path):
    assert preference_section({"task": "generation"}, RunDir(tmp_path)) is None
    assert preference_section(None, RunDir(tmp_path)) is None
    skipped = preference_section({"preference": {"skipped": "the run's test split has no preference pairs"}},
                                 RunDir(tmp_path))
    assert markdown(skipped).count("Preference accuracy not measured: the run's test split has no preference "
                                   "pairs.") == 1


def test_a_judged_review_against_the_sft_run_puts_the_judges_win_rate_in_the_report(tmp_path):
    run = RunDir(tmp_path / "dpo")
    run.root.mkdir()
    save_config(validate_config({"model": {"name": "default"}, "data": {"train": "pairs.jsonl"}}), run.config_path)
    write_json(run.eval_json, EVAL)
    prompts = [ReviewPrompt(f"pairs.jsonl:{n}", None, f"prompt {n}", "ok", None, {"dpo": f"new {n}", "sft": f"old {n}"})
               for n in range(3)]
    database_path(run.root).parent.mkdir()
    create_database(database_path(run.root), ReviewPlan(
        models=[("dpo", "tuned", str(run.root)), ("sft", "run", "runs/sft")], prompts=prompts,
        items=[(n, "dpo", "sft") for n in range(3)], queues={"ann": [(n, "dpo", "sft") for n in range(3)]},
        rubric=["correct"], show_reference=False))
    with ReviewStore.open(run.root) as store:
        store.add_reviewer("judge:big", "judge", [(item.item_id, item.first, item.second) for item in store.items()])
        for item in store.items():
            store.judge("judge:big", item.item_id, "a" if item.first == "dpo" else "b")  # the new model wins all
    text = render_markdown(collect_report(run.config(), run, datetime(2026, 12, 6)))
    assert r"| judge:big | sft | 3–0–0 | 100% \[" in text  # the preference section's judge table
    assert r"Judge judge:big against sft: win rate 100% \[" in text  # and the human review section's sentence
