"""The pipeline: its stages in order with one signature, timings after every stage, one load of the splits per
run passed to every stage, a run finished from a later stage, run folders; and end to end on the real default
model (a few steps, eval, export, plain reload)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tunesmith import pipeline
from tunesmith.cli import main
from tunesmith.config import validate_config
from tunesmith.data import splits as splits_module
from tunesmith.errors import RunError
from tunesmith.pipeline import create_run, find_resumable_run, run_pipeline, stages

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sms_spam" / "config.yaml"


@pytest.mark.slow
def test_run_then_reload_merged_with_plain_transformers(tmp_path, capsys, default_model_dir):
    code = main([
        "run", str(EXAMPLE),
        "--set", f"output.dir={tmp_path}", "--set", "output.name=e2e",
        "--set", "data.max_train_rows=48", "--set", "data.max_eval_rows=24",
        "--set", "train.max_steps=3", "--set", "train.batch_size=8", "--set", "train.eval_every=3",
        "--set", "evaluate.num_examples=3",
    ])
    assert code == 0
    run = tmp_path / "e2e"
    assert f"report: {run / 'report.html'}" in capsys.readouterr().out
    for name in ("config.yaml", "metrics.jsonl", "eval.json", "predictions.jsonl", "report.md", "report.html",
                 "data_summary.json", "train_summary.json"):
        assert (run / name).is_file(), name
    for name in ("adapter", "merged", "checkpoints"):
        assert (run / name).is_dir(), name
    evaluation = json.loads((run / "eval.json").read_text())
    assert evaluation["task"] == "classification" and evaluation["num_examples"] == 24
    base, tuned = evaluation["base"], evaluation["tuned"]
    # Three steps of 8 rows already beat the base model on its own test rows (measured: accuracy 0.63 → 0.79,
    # loss 7.6 → 1.2); the margin leaves room for float differences between CPUs.
    assert tuned["accuracy"] > base["accuracy"] and tuned["loss"] < base["loss"] / 2
    assert len((run / "predictions.jsonl").read_text().splitlines()) == 24

    # The merged folder must load and generate without tunesmith installed in the process.
    script = (
        "import sys, torch\n"
        "assert 'tunesmith' not in sys.modules\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        f"path = {str(run / 'merged')!r}\n"
        "tok = AutoTokenizer.from_pretrained(path)\n"
        "model = AutoModelForCausalLM.from_pretrained(path)\n"
        "ids = tok.apply_chat_template([{'role': 'user', 'content': 'Free entry! Win cash now'}],"
        " add_generation_prompt=True, return_tensors='pt', return_dict=True)\n"
        "out = model.generate(**ids, max_new_tokens=5, do_sample=False)\n"
        "print('GENERATED:' + tok.decode(out[0, ids['input_ids'].shape[1]:], skip_special_tokens=True))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "GENERATED:" in result.stdout


def fake_stages(seen: list, run):
    """The pipeline's stages, each recording its name, the inputs it was given and the timings it saw."""
    def fake(name):
        def stage(stage_config, stage_run, inputs):
            assert stage_run == run
            seen.append((name, inputs, json.loads(run.timings.read_text()) if run.timings.exists() else None))
            return {}
        return stage

    return lambda resume=False, gate=False: [(name, fake(name)) for name, _ in stages(resume, gate)]


def test_stages_run_in_order_with_one_signature_and_timings_after_each(tmp_path, monkeypatch):
    config = validate_config({"data": {"train": "t.jsonl"}, "output": {"dir": str(tmp_path)}})
    run = create_run(config)
    seen = []
    monkeypatch.setattr(pipeline, "stages", fake_stages(seen, run))
    run_pipeline(config, run)
    assert [name for name, *_ in seen] == ["data", "train", "evaluate", "export", "report"]
    assert len({id(inputs) for _, inputs, _ in seen}) == 1 and seen[0][1].config is config  # one per run
    assert set(seen[-1][2]) == {"data", "train", "evaluate", "export", "total"}  # the report sees the others
    assert set(json.loads(run.timings.read_text())) == {"data", "train", "evaluate", "export", "report", "total"}


def test_a_run_finished_from_a_later_stage_runs_the_rest_and_keeps_the_earlier_timings(tmp_path, monkeypatch):
    config = validate_config({"data": {"train": "t.jsonl"}, "output": {"dir": str(tmp_path)}})
    run = create_run(config)
    seen = []
    monkeypatch.setattr(pipeline, "stages", fake_stages(seen, run))
    run_pipeline(config, run, start="evaluate")
    assert [name for name, *_ in seen] == ["evaluate", "export", "report"]
    assert set(json.loads(run.timings.read_text())) == {"evaluate", "export", "report"}  # no whole run to total
    run.timings.write_text(json.dumps({"data": 1.0, "train": 2.0, "evaluate": 3.0, "total": 6.0}))
    run_pipeline(config, run, start="export", until="export")
    assert json.loads(run.timings.read_text()).keys() == {"data", "train", "evaluate", "export"}
    with pytest.raises(ValueError, match="no pipeline stage is named 'evaluation'"):
        run_pipeline(config, run, start="evaluation")



def test_a_stage_that_fails_leaves_failure_json_and_a_rerun_clears_it(tmp_path, monkeypatch):
    config = validate_config({"data": {"train": "t.jsonl"}, "output": {"dir": str(tmp_path)}})
    run = create_run(config)

    def failing_train(stage_config, stage_run, inputs):
        raise RunError("the disk is full")

    monkeypatch.setattr(pipeline, "stages", lambda resume=False, gate=False: [
        (name, failing_train if name == "train" else (lambda c, r, i: {})) for name, _ in stages(resume)])
    with pytest.raises(RunError):
        run_pipeline(config, run)
    failure = json.loads(run.failure.read_text())
    assert failure["stage"] == "train" and failure["error"] == "the disk is full" and failure["type"] == "RunError"
    monkeypatch.setattr(pipeline, "stages",
                        lambda resume=False, gate=False: [(name, lambda c, r, i: {}) for name, _ in stages()])
    run_pipeline(config, run, resume=True)
    assert not run.failure.exists()

def test_a_run_loads_its_splits_once(tmp_path, tiny_model_dir, write_jsonl, monkeypatch):
    rows = [{"text": f"message {i} {'win cash' if i % 3 == 0 else 'see you'}", "label": ["spam", "ham"][i % 3 > 0]}
            for i in range(24)]
    config = validate_config({
        "model": {"name": str(tiny_model_dir)}, "data": {"path": write_jsonl(tmp_path / "d.jsonl", rows),
                                                        "split": {"validation": 0.2, "test": 0.2}},
        "lora": {"r": 2, "alpha": 4, "target_modules": ["q_proj", "v_proj"]},
        "train": {"max_steps": 2, "batch_size": 4, "eval_every": 2, "save_every": 2},
        "evaluate": {"batch_size": 4, "num_examples": 2}, "output": {"dir": str(tmp_path / "runs")},
    })
    loads = []
    real = splits_module.load_splits
    monkeypatch.setattr(splits_module, "load_splits", lambda *args, **kwargs: loads.append(1) or real(*args, **kwargs))
    run = run_pipeline(config, create_run(config))
    assert len(loads) == 1
    assert json.loads(run.eval_json.read_text())["num_examples"] == 5 and run.report_html.is_file()


def test_a_named_run_folder_is_reused_only_while_nothing_was_trained(tmp_path):
    config = validate_config({"data": {"train": "t.jsonl"}, "output": {"dir": str(tmp_path), "name": "exp"}})
    run = create_run(config, "exp.yaml")
    assert run.config() == config
    assert create_run(config, "exp.yaml") == run  # the first attempt stopped before training
    run.metrics.write_text('{"step": 1, "loss": 2.0}\n', encoding="utf-8")
    with pytest.raises(RunError, match="already exists.*continue it with --resume"):
        create_run(config, "exp.yaml")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("a user's file")
    with pytest.raises(RunError, match="is not a folder tunesmith made"):
        create_run(config.model_copy(update={"output": config.output.model_copy(update={"name": "notes"})}))
    assert [path.name for path in (tmp_path / "notes").iterdir()] == ["mine.txt"]  # not even a lock file


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path):
    config = validate_config({"data": {"train": "t.jsonl"}, "output": {"dir": str(tmp_path)}})
    folders = {create_run(config, "same.yaml").root for _ in range(3)}
    assert len(folders) == 3 and all(folder.name.startswith("same-") for folder in folders)


def test_resume_finds_the_run_of_this_config_file_not_of_another_with_the_same_stem(tmp_path):
    for experiment in ("expA", "expB"):
        (tmp_path / experiment).mkdir()
    config = validate_config({"data": {"train": "t.jsonl"}, "output": {"dir": str(tmp_path / "runs")}})
    mine = create_run(config, tmp_path / "expA" / "config.yaml")
    other = create_run(config, tmp_path / "expB" / "config.yaml")
    for run in (mine, other):
        (run.checkpoints / "step-000002").mkdir(parents=True)
    assert find_resumable_run(config, tmp_path / "expA" / "config.yaml") == mine
    with pytest.raises(RunError, match="nothing to resume: no run of"):
        find_resumable_run(config, tmp_path / "expC" / "config.yaml")


def test_a_config_name_with_a_space_finds_its_own_run(tmp_path):
    config = validate_config({"data": {"train": "t.jsonl"}, "output": {"dir": str(tmp_path / "runs")}})
    run = create_run(config, tmp_path / "my experiment.yaml")
    (run.checkpoints / "step-000001").mkdir(parents=True)
    assert run.root.name.startswith("my-experiment-")
    assert find_resumable_run(config, tmp_path / "my experiment.yaml") == run


def test_qlora_on_a_machine_without_cuda_stops_before_the_data_stage(tmp_path, monkeypatch):
    from tunesmith.errors import ConfigError
    from tunesmith.models import loading
    from tunesmith.run_dir import RunDir

    monkeypatch.setattr(loading.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(pipeline, "check_run_data", lambda *args: pytest.fail("the data stage ran"))
    config = validate_config({"data": {"train": "missing.jsonl"}, "method": "qlora"})
    (tmp_path / "run").mkdir()
    with pytest.raises(ConfigError, match="method: qlora quantizes the base model"):
        run_pipeline(config, RunDir(tmp_path / "run"))


def test_a_gate_section_adds_the_gate_after_the_export_and_before_the_report(tmp_path, monkeypatch):
    config = validate_config({"data": {"train": "t.jsonl"}, "output": {"dir": str(tmp_path)}, "gate": {}})
    run = create_run(config)
    seen = []
    monkeypatch.setattr(pipeline, "stages", fake_stages(seen, run))
    run_pipeline(config, run)
    assert [name for name, *_ in seen] == ["data", "train", "evaluate", "export", "gate", "report"]
