"""A finished run's record is read-only where it defines the model: `--set` on a run folder changes only the
settings of the command at hand."""

from __future__ import annotations

import pytest

from tunesmith.run_dir import RunDir


@pytest.fixture()
def run(project, cli) -> RunDir:
    code, _, error = cli("train", "config.yaml", "--set", "output.name=exp")
    assert code == 0, error
    return RunDir(project / "runs" / "exp")


@pytest.mark.parametrize(("key", "value", "trained"), [
    ("lora.r", "4", "2"), ("model.chat_template", "chatml", '"model"'), ("data.max_length", "512", "256"),
])
def test_settings_of_the_trained_model_cannot_change(run, cli, key, value, trained):
    before = run.config_path.read_text()
    code, _, error = cli("export", str(run.root), "--set", f"{key}={value}")
    assert code == 2 and error == (f"tunesmith: error: config: {key}: is fixed in a trained run (it was trained with "
                                   f"{trained}) (on a run folder, --set changes evaluate.*, serve.*, review.*, "
                                   "gate.* and model.attention only; start a new run to change the rest)")
    assert run.config_path.read_text() == before and not run.merged.exists()


def test_settings_of_the_command_at_hand_can(run, cli):
    code, _, error = cli("report", str(run.root), "--set", "evaluate.num_examples=1")
    assert code == 0, error
    assert run.config().evaluate.num_examples == 1
