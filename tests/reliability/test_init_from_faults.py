"""`model.init_from` pointing at something unusable, and a continuing run whose init_from weights changed: each is
refused in one line naming `model.init_from` (the setting) or saying what changed and what to do (the run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from tunesmith.config import ModelConfig, load_config, save_config, validate_config
from tunesmith.errors import ConfigError, RunError
from tunesmith.export import export_run
from tunesmith.models import load_base_model, load_tuned_model
from tunesmith.models.init_from import settle_init_from
from tunesmith.run_dir import RunDir

CPU = torch.device("cpu")


def config_file(folder: Path, init_from: str, **model) -> Path:
    path = folder / "continue.yaml"
    path.write_text(yaml.safe_dump({"model": {"init_from": init_from, **model}, "data": {"train": "train.jsonl"}}),
                    encoding="utf-8")
    return path


def test_a_missing_folder_is_refused(tmp_path, error_of):
    assert error_of(lambda: load_config(config_file(tmp_path, "runs/nowhere"))) == (
        f"config: model.init_from: {tmp_path / 'runs' / 'nowhere'} does not exist "
        "(give the folder of a finished tunesmith run (runs/<name>))")


def test_a_folder_that_is_not_a_run_is_refused(tmp_path, tiny_model_dir, error_of):
    users = tmp_path / "notes"
    users.mkdir()
    (users / "todo.txt").write_text("train it\n", encoding="utf-8")
    assert error_of(lambda: load_config(config_file(tmp_path, "notes"))) == (
        f"config: model.init_from: {users} is not a tunesmith run folder (no config.yaml) "
        "(give the folder of a finished tunesmith run (runs/<name>))")
    # A config of the user's own there is still no finished run.
    (users / "config.yaml").write_text(yaml.safe_dump({"data": {"train": "train.jsonl"}}), encoding="utf-8")
    message = error_of(lambda: load_config(config_file(tmp_path, "notes")))
    assert message.startswith(f"config: model.init_from: {users} is not a finished tunesmith run (no "
                              "train_summary.json) (give a run that finished training;")
    # Where the weights load, the folder's kind is checked too.
    (users / "config.yaml").unlink()
    model = ModelConfig(name=str(tiny_model_dir), init_from=str(users))
    assert error_of(lambda: load_base_model(model, CPU)) == (
        f"config: model.init_from: {users} is not a tunesmith run folder "
        "(give the folder of a finished tunesmith run (runs/<name>))")


def test_an_unfinished_run_is_refused(lora_run, tmp_path, tiny_model_dir, error_of):
    message = error_of(lambda: load_config(config_file(tmp_path, str(lora_run))))
    assert message == (
        f"config: model.init_from: {lora_run} is not a finished tunesmith run (no train_summary.json) (give a run "
        f"that finished training; one that stopped goes on with `tunesmith train {lora_run / 'config.yaml'} "
        f"--resume --run-dir {lora_run}`)")
    model = ModelConfig(name=str(tiny_model_dir), init_from=str(lora_run))
    assert error_of(lambda: load_base_model(model, CPU)).startswith(
        f"config: model.init_from: {lora_run} has not finished training (no train_summary.json) (finish it first: ")


def test_damaged_best_weights_are_refused(init_from_run, lora_run, error_of):
    adapter = RunDir(lora_run).best / "adapter_model.safetensors"
    adapter.write_bytes(adapter.read_bytes()[:-100])  # cut off, as a full disk leaves it
    config = RunDir(init_from_run).config()
    message = error_of(lambda: load_base_model(config.model, CPU))
    assert message.startswith(f"config: model.init_from: the best weights of {lora_run} are damaged: "
                              "adapter_model.safetensors is cut off or padded (")
    assert message.endswith(f"(write them again from its checkpoints: tunesmith train {lora_run / 'config.yaml'} "
                            f"--resume --run-dir {lora_run})")
    adapter.write_bytes(b"\x00" * 4)
    assert "adapter_model.safetensors cannot be read (no safetensors header" in error_of(
        lambda: load_base_model(config.model, CPU))
    adapter.unlink()
    assert error_of(lambda: load_base_model(config.model, CPU)).startswith(
        f"config: model.init_from: the best weights of {lora_run} are damaged: adapter_model.safetensors missing")


def test_changed_sft_weights_refuse_resume_evaluation_and_export(init_from_run, lora_run, error_of):
    from safetensors.torch import load_file, save_file

    run = RunDir(init_from_run)
    config = run.config()
    settle_init_from(run, config)  # unchanged: a resume goes on
    adapter = RunDir(lora_run).best / "adapter_model.safetensors"
    save_file({name: tensor * 1.5 for name, tensor in load_file(adapter).items()}, adapter)  # the SFT run went on
    expected = (f"the best weights of {lora_run}, which {init_from_run} continues from, changed since this run "
                f"started training on them (put {lora_run / 'checkpoints' / 'best'} back as it was, or train a new "
                "run from it)")
    assert error_of(lambda: settle_init_from(run, config)) == expected  # a resume
    assert error_of(lambda: load_tuned_model(init_from_run, CPU)) == expected  # evaluate, chat, review, gate
    assert error_of(lambda: export_run(config, run)) == expected
    assert not run.merged.exists()


def test_a_run_without_its_record_is_refused(init_from_run, error_of):
    RunDir(init_from_run).init_from.unlink()
    with pytest.raises(RunError, match="holds no record of the weights it started from"):
        load_tuned_model(init_from_run, CPU)


def test_a_run_cannot_continue_from_itself_or_in_a_circle(init_from_run, lora_run, tiny_model_dir, error_of):
    sft = RunDir(lora_run)
    itself = sft.config().model_copy(update={"model": ModelConfig(name=str(tiny_model_dir), init_from=str(lora_run))})
    assert error_of(lambda: settle_init_from(sft, itself)) == (
        f"config: model.init_from: {lora_run} cannot continue from itself "
        "(give the folder of a finished tunesmith run (runs/<name>))")
    # The SFT run resumed as a continuation of the run that continues from it.
    back = sft.config().model_copy(update={"model": ModelConfig(name=str(tiny_model_dir),
                                                                 init_from=str(init_from_run))})
    assert error_of(lambda: settle_init_from(sft, back)) == (
        f"config: model.init_from: {init_from_run} continues from {lora_run}, so {lora_run} cannot continue from it "
        "(a run can continue only from a run trained before it)")
    # Config files edited by hand into a circle.
    save_config(back, sft.config_path)
    continuing = RunDir(init_from_run).config()
    assert error_of(lambda: load_base_model(continuing.model, CPU)) == (
        f"config: model.init_from: the runs continue from each other in a circle ({lora_run} -> {init_from_run} -> "
        f"{lora_run}) (a run can continue only from a run trained before it)")


def test_another_model_name_or_qlora_is_refused(init_from_run, lora_run, tmp_path, error_of):
    assert error_of(lambda: load_config(config_file(tmp_path, str(lora_run), name="other/model"))) == (
        f"config: model.init_from: {lora_run} was trained from name {RunDir(lora_run).config().model.name!r}, and "
        "model.name says 'other/model' (leave model.name out: a run that continues another takes its model)")
    path = config_file(tmp_path, str(lora_run))
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    path.write_text(yaml.safe_dump({**raw, "method": "qlora"}), encoding="utf-8")
    assert error_of(lambda: load_config(path)).startswith("config: model.init_from: qlora quantizes its base")
    # From Python, without the config file: the loader checks the name too.
    config = validate_config({"model": {"name": "other/model", "init_from": str(lora_run)},
                              "data": {"train": "train.jsonl"}})
    with pytest.raises(ConfigError, match="was trained from 'other/model'|model.name says 'other/model'"):
        load_base_model(config.model, CPU)


def test_the_record_names_the_run_and_its_fingerprint(init_from_run, lora_run):
    record = json.loads(RunDir(init_from_run).init_from.read_text(encoding="utf-8"))
    assert record["run"] == str(Path(lora_run).resolve()) and len(record["fingerprint"]) == 64


def close(a, b) -> bool:
    """Equal, numbers to 1e-4 (the SFT model merged in fp32 by `load_base_model` against peft's plain merge)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[key], b[key]) for key in a)
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-4
    return a == b


def test_sft_then_a_continuing_run_through_the_cli(project, cli):
    """Train an SFT run, then a run continuing from it: its base column is the SFT model's own scores (another
    cache key than the plain base's), and once the SFT run's weights change, its resume is refused in one line."""
    assert cli("train", "config.yaml", "--set", "output.name=sft")[0] == 0
    settings = yaml.safe_load((project / "config.yaml").read_text(encoding="utf-8"))
    settings["model"] = {"init_from": "runs/sft"}
    (project / "continue.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")
    code, _, error = cli("train", "continue.yaml", "--set", "output.name=next")
    assert code == 0, error
    sft, continued = RunDir(project / "runs" / "sft"), RunDir(project / "runs" / "next")
    assert continued.config().model.name == sft.config().model.name
    assert json.loads(continued.init_from.read_text(encoding="utf-8"))["run"] == str(sft.root.resolve())

    for run in (sft, continued):
        code, _, error = cli("eval", str(run.root))
        assert code == 0, error
    scores = [json.loads(run.eval_json.read_text(encoding="utf-8")) for run in (sft, continued)]
    assert close(scores[1]["base"], scores[0]["tuned"]) and not close(scores[0]["base"], scores[0]["tuned"])
    assert scores[1]["base_from_cache"] is False and scores[1]["base_key"] != scores[0]["base_key"]

    from safetensors.torch import load_file, save_file

    adapter = sft.best / "adapter_model.safetensors"
    save_file({name: tensor * 1.5 for name, tensor in load_file(adapter).items()}, adapter)
    code, _, error = cli("train", "continue.yaml", "--resume", "--set", "output.name=next",
                         "--set", "train.max_steps=6")
    assert code != 0 and error.strip().splitlines()[-1].endswith(
        "changed since this run started training on them (put "
        f"{sft.root.resolve() / 'checkpoints' / 'best'} back as it was, or train a new run from it)")
    code, _, error = cli("eval", str(continued.root))
    assert code != 0 and "changed since this run started training on them" in error
