"""compare_run: the comparison table of a run, evaluating the base model first when eval.json lacks it; and a previous
run's model scored on this run's test rows."""

from __future__ import annotations

import json

from tunesmith.data.run_inputs import RunInputs
from tunesmith.evaluate.compare import compare_run
from tunesmith.evaluate.runner import evaluate_run
from tunesmith.json_files import read_jsonl


def test_compare_run_evaluates_the_base_model_when_eval_json_lacks_it(run_folder):
    first = evaluate_run(run_folder.config(), run_folder, RunInputs(run_folder.config()), include_base=False)
    assert first["base"] is None and first["delta"] == {}
    assert read_jsonl(run_folder.predictions)[0]["base_prediction"] is None

    table = compare_run(run_folder.config(), run_folder)
    result = json.loads(run_folder.eval_json.read_text(encoding="utf-8"))
    assert result["base"] is not None
    assert table.splitlines()[0].startswith("classification on 3 test rows; baselines trained on the run's ")
    assert table.splitlines()[1].split() == ["metric", "|", "base", "|", "tuned", "|", "delta", "|", "majority", "|",
                                             "tfidf_logreg"]
    accuracy_row = next(line for line in table.splitlines() if line.startswith("accuracy"))
    assert accuracy_row.split("|")[2].strip() == f"{result['tuned']['accuracy']:.4f}"


def test_compare_against_a_previous_run_scores_both_models_on_this_runs_test_rows(run_folder, tmp_path):
    import shutil

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from tunesmith.evaluate.runner import evaluate_against
    from tunesmith.run_dir import RunDir

    previous = RunDir(tmp_path / "previous")
    shutil.copytree(run_folder.root, previous.root)
    shutil.rmtree(previous.best)
    model = AutoModelForCausalLM.from_pretrained(run_folder.config().model.name)
    get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj"], init_lora_weights=False)).save_pretrained(
        previous.best)

    itself = evaluate_against(run_folder.config(), run_folder, run_folder, RunInputs(run_folder.config()))
    assert itself["base"] == itself["tuned"]  # the same model on the same rows: the comparison has no bias
    result = evaluate_against(run_folder.config(), run_folder, previous, RunInputs(run_folder.config()))
    assert result["against"] == "previous" and result["tuned"] == itself["tuned"]
    assert result["base"]["loss"] != result["tuned"]["loss"]
    table = compare_run(run_folder.config(), run_folder, against=previous).splitlines()
    # This run's baselines were scored on the same rows, so they stay beside the two models.
    assert table[1].split() == ["metric", "|", "previous", "|", "run", "|", "delta", "|", "majority", "|",
                                "tfidf_logreg"]
    assert "previous run previous" in table[0]
