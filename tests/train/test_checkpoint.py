"""Checkpoints and exact resume. After a real SIGKILL, `tunesmith train` is killed mid-run, `--resume` finishes
it, and the final adapter matches an uninterrupted run's to 1e-6 (data order, dropout RNG, AdamW, schedule and the
step count are all restored). A run killed while writing a checkpoint resumes from the one before. The trainer
state reads back as it was written."""

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tunesmith.config import load_config
from tunesmith.data import RunInputs, check_run_data
from tunesmith.run_dir import RunDir
from tunesmith.train import train
from tunesmith.train.checkpoint import latest_checkpoint
from tunesmith.train.state import TrainState

MAX_STEPS = 20  # 5 steps an epoch: the kills and the resumes cross epoch boundaries
TIMEOUT_S = 180


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_model_dir, spam_rows, write_jsonl) -> Path:
    """A config and a JSONL file: LoRA with dropout (so the RNG state matters), 2 x 2 rows per step
    (accumulation), deterministic single-threaded fp32 CPU, a checkpoint every 2 steps (pruned to the last 2)."""
    folder = tmp_path_factory.mktemp("kill")
    write_jsonl(folder / "train.jsonl", spam_rows(24))
    config = {
        "model": {"name": str(tiny_model_dir), "dtype": "float32"},
        "data": {"train": "train.jsonl", "max_length": 96, "split": {"validation": 0.2, "test": 0.0}},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.1},
        "train": {"max_steps": MAX_STEPS, "batch_size": 2, "grad_accumulation": 2, "learning_rate": 1e-2,
                  "warmup_ratio": 0.1, "save_every": 2, "eval_every": 4, "group_by_length": False, "threads": 1},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder


def train_command(project: Path, run: RunDir, *flags: str) -> list[str]:
    return [sys.executable, "-m", "tunesmith.cli", "train", str(project / "config.yaml"), "--run-dir", str(run.root),
            *flags]


def train_to_the_end(project: Path, run: RunDir, *flags: str) -> None:
    result = subprocess.run(train_command(project, run, *flags), capture_output=True, text=True, timeout=TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-3000:]


def checkpoint_written(run: RunDir, step: int) -> bool:
    return (run.checkpoints / f"step-{step:06d}").is_dir()


def step_logged(run: RunDir, step: int) -> bool:
    """The step's training line is in metrics.jsonl: its update is done, and (odd step) no checkpoint holds it."""
    return run.metrics.is_file() and f'{{"step": {step}, "epoch"' in run.metrics.read_text()


KILL_POINTS = {"after-checkpoint-4": (checkpoint_written, 4), "mid-interval-step-9": (step_logged, 9)}


def kill_when(project: Path, run: RunDir, reached, step: int) -> None:
    """Start training and SIGKILL it as soon as ``reached(run, step)`` holds (wherever the trainer then is)."""
    log = run.root.with_suffix(".log")
    with log.open("w") as output:
        process = subprocess.Popen(train_command(project, run), stdout=output, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + TIMEOUT_S
            while not reached(run, step):
                assert process.poll() is None, f"training ended before step {step}:\n{log.read_text()[-3000:]}"
                assert time.monotonic() < deadline, f"step {step} not reached in {TIMEOUT_S} s"
                time.sleep(0.005)
            process.send_signal(signal.SIGKILL)
        finally:
            process.kill()  # no-op when already dead; never leave a trainer behind a failed assert
            code = process.wait(timeout=30)
    assert code == -signal.SIGKILL, f"training was not killed mid-run (exit {code}):\n{log.read_text()[-3000:]}"
    assert not run.train_summary.exists()


def adapter(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "adapter_model.safetensors")


def max_abs_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[key] - b[key]).abs().max()) for key in a)


def train_losses(run: RunDir) -> dict[int, float]:
    lines = [json.loads(line) for line in run.metrics.read_text().splitlines()]
    steps = [line["step"] for line in lines if "loss" in line]
    assert steps == list(range(1, MAX_STEPS + 1))  # every step logged once, none repeated after the resume
    return {line["step"]: line["loss"] for line in lines if "loss" in line}


def tensorboard_loss_steps(run: RunDir) -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run.tensorboard))
    events.Reload()
    return [event.step for event in events.Scalars("train/loss")]


def assert_same_training(got: RunDir, reference: RunDir) -> None:
    final = f"step-{MAX_STEPS:06d}"
    assert max_abs_difference(adapter(got.checkpoints / final / "weights"),
                              adapter(reference.checkpoints / final / "weights")) <= 1e-6
    assert max_abs_difference(adapter(got.best), adapter(reference.best)) <= 1e-6
    got_losses, reference_losses = train_losses(got), train_losses(reference)
    assert all(abs(got_losses[step] - reference_losses[step]) <= 1e-6 for step in reference_losses)
    assert tensorboard_loss_steps(got) == list(range(1, MAX_STEPS + 1))  # the killed run's extra events purged
    summary, reference_summary = (json.loads(run.train_summary.read_text()) for run in (got, reference))
    for key in ("steps", "best_step", "best_val_loss", "train_tokens", "skipped_steps"):
        assert summary[key] == reference_summary[key], key


@pytest.fixture(scope="module")
def uninterrupted(project) -> RunDir:
    run = RunDir(project / "uninterrupted")
    train_to_the_end(project, run)
    return run


@pytest.mark.parametrize("kill_point", sorted(KILL_POINTS))
def test_sigkill_then_resume_equals_uninterrupted(project, uninterrupted, kill_point):
    reached, step = KILL_POINTS[kill_point]
    run = RunDir(project / f"killed-{kill_point}")
    kill_when(project, run, reached, step)
    resumed_from = latest_checkpoint(run.checkpoints)
    assert resumed_from is not None and int(resumed_from.name.removeprefix("step-")) >= step - 1
    train_to_the_end(project, run, "--resume")
    assert_same_training(run, uninterrupted)


def test_kill_while_writing_a_checkpoint_resumes_from_the_previous_one(project, uninterrupted):
    """The state a SIGKILL leaves inside `save_checkpoint` / `publish_best` of the last step: a half-written
    staging folder of step 20, and `best` moved aside to `best.old` with its replacement not yet in place."""
    run = RunDir(project / "killed-while-writing")
    shutil.copytree(uninterrupted.root, run.root)
    run.train_summary.unlink()
    final = run.checkpoints / f"step-{MAX_STEPS:06d}"
    half_written = run.checkpoints / f".{final.name}-staging-k1ll3d"
    half_written.mkdir()
    shutil.copytree(final / "weights", half_written / "weights")
    (half_written / "optimizer.pt").write_bytes((final / "optimizer.pt").read_bytes()[:100])
    shutil.rmtree(final)
    run.best.rename(run.best.with_name("best.old"))
    (run.checkpoints / ".best-staging-k1ll3d").mkdir()

    previous = latest_checkpoint(run.checkpoints)
    assert previous == run.checkpoints / f"step-{MAX_STEPS - 2:06d}"  # the staging folder is never picked
    # In-process (what `tunesmith train --resume` calls) to spare a ~5 s interpreter start.
    config = load_config(project / "config.yaml")
    threads = torch.get_num_threads()
    try:
        inputs = RunInputs(config)  # as the pipeline passes them: one load for both stages
        check_run_data(config, run, inputs)
        train(config, run, inputs, resume=True)
    finally:
        torch.set_num_threads(threads)  # the config's `threads: 1` must not slow the rest of the session
    assert not run.best.with_name("best.old").exists()
    assert not list(run.checkpoints.glob(".*-staging-*"))  # the killed writers' leftovers are cleaned up
    assert_same_training(run, uninterrupted)


def test_train_state_round_trips_and_reads_checkpoints_from_before_skipped_steps():
    state = TrainState(step=7, epoch=1, batch=2, best_val_loss=0.5, best_step=6, evals_without_gain=1, tokens=900,
                       elapsed_s=12.5, skipped_steps=[3])
    assert TrainState.from_json(json.loads(json.dumps(state.to_json()))) == state
    legacy = {key: value for key, value in state.to_json().items() if key != "skipped_steps"}
    assert TrainState.from_json(legacy).skipped_steps == []
