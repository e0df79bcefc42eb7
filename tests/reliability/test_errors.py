"""Faults that used to end in a traceback are one line naming the file or key, with a hint, and a non-zero exit;
and what can be checked early is checked before any model is loaded or trained."""

from __future__ import annotations

import errno
import shutil
import tempfile

import pytest

from tunesmith.run_dir import RunDir


def test_an_infinite_number_is_a_config_error(project, cli):
    code, _, error = cli("config", "config.yaml", "--set", "train.epochs=inf")
    assert code == 2 and error.startswith("tunesmith: error: config: train.epochs: input should be a finite number")


def test_a_metric_of_another_task_fails_before_any_model_loads(project, cli, monkeypatch):
    import tunesmith.models.loading as loading

    monkeypatch.setattr(loading, "load_model_folder", lambda *a, **k: pytest.fail("a model was loaded"))
    code, _, error = cli("config", "config.yaml", "--set", "evaluate.metrics=[acuracy]")
    assert code == 2 and error.startswith("tunesmith: error: config: evaluate.metrics: 'acuracy': not a metric")
    code, _, error = cli("train", "config.yaml", "--set", "evaluate.metrics=[bleu]")
    assert code == 2 and error == ("tunesmith: error: config: evaluate.metrics: 'bleu' is not a classification "
                                   "metric; choose from accuracy, precision, recall, f1, loss, perplexity")


@pytest.mark.parametrize(("targets", "named"), [("[q_prj]", "'q_prj'"), ("[q_proj, vproj]", "'vproj'")])
def test_lora_targets_that_match_no_layer_are_a_config_error(project, cli, targets, named):
    code, _, error = cli("train", "config.yaml", "--set", f"lora.target_modules={targets}")
    assert code == 2 and error == (
        f"tunesmith: error: config: lora.target_modules: {named} matches no linear layer of the model (the "
        "model's linear layers are: down_proj, gate_proj, k_proj, lm_head, o_proj, q_proj, up_proj, v_proj "
        "(or use all-linear))")


def test_a_model_folder_with_empty_weights_or_no_tokenizer(project, cli, tiny_model_dir, tmp_path):
    empty = tmp_path / "empty-weights"
    shutil.copytree(tiny_model_dir, empty)
    (empty / "model.safetensors").write_bytes(b"")
    code, _, error = cli("train", "config.yaml", "--set", f"model.name={empty}")
    assert code == 2 and error == (f"tunesmith: error: {empty}: model.safetensors is empty (0 bytes) (the model "
                                   "was not copied or saved completely; save or copy it again)")
    no_tokenizer = tmp_path / "no-tokenizer"
    no_tokenizer.mkdir()
    for name in ("config.json", "model.safetensors", "generation_config.json"):
        shutil.copy(tiny_model_dir / name, no_tokenizer / name)
    code, _, error = cli("data", "check", "data.jsonl", "--set", f"model.name={no_tokenizer}")
    assert code == 2 and error.startswith(f"tunesmith: error: {no_tokenizer} has no usable tokenizer")


def test_a_run_folder_or_output_dir_that_is_a_file(project, cli):
    (project / "taken").write_text("a file")
    code, _, error = cli("train", "config.yaml", "--run-dir", "taken")
    assert code == 2 and error == ("tunesmith: error: taken exists and is not a folder (pick another output.name "
                                   "(or --run-dir))")
    code, _, error = cli("train", "config.yaml", "--set", "output.dir=taken")
    assert code == 2 and error == ("tunesmith: error: output.dir taken is a file, not a folder (set output.dir to a "
                                   "folder)")


def test_a_damaged_run_config_or_best_adapter(project, cli):
    code, _, _ = cli("train", "config.yaml", "--set", "output.name=exp")
    run = RunDir(project / "runs" / "exp")
    (run.best / "adapter_model.safetensors").write_bytes(b"\x00" * 7)
    code, _, error = cli("export", "runs/exp")
    assert code == 2 and error.startswith("tunesmith: error: cannot load the LoRA adapter in runs/exp/checkpoints/best")
    run.config_path.write_text("model: {name: [unclosed\n")
    code, _, error = cli("report", "runs/exp")
    assert code == 2 and error.startswith("tunesmith: error: runs/exp/config.yaml is damaged:")


def test_a_read_only_folder_at_export(project, cli, monkeypatch):
    code, _, _ = cli("train", "config.yaml", "--set", "output.name=exp")

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkdtemp", refuse)  # what a read-only run folder does to the first write
    code, _, error = cli("export", "runs/exp")
    assert code == 2 and error == ("tunesmith: error: cannot write runs/exp: permission denied (make runs/exp "
                                   "writable, or write somewhere else)")
