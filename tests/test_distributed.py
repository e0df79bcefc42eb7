"""Several processes train the model one process trains. Every test launches real jobs of the `tunesmith` command
(gloo on CPU, a tiny model, a few steps) and compares them with one process:

- 2 processes x batch 4 give the losses and final weights of 1 process x batch 8 (padded, packed, and DPO pairs);
- a checkpoint written by 2 processes resumes exactly on 1, and the reverse;
- a killed process ends the job within seconds with a clear error, and `--resume` continues it;
- 2 "machines" x 1 process (torchrun rendezvous on 127.0.0.1) give what 2 local processes give;
- evaluation sharded over 2 processes gives the single-process predictions and metrics.
- the validation metrics of `train.val_metrics`, scored over 2 processes, are those of 1 process.

The project uses a constant learning rate so that a run stopped at step 3 and resumed to step 6 is the same run
as one planned for 6 steps, and no dropout (random masks depend on how rows are split between processes).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
import yaml
from safetensors.torch import load_file

from tunesmith import distributed
from tunesmith.cli import main
from tunesmith.cli.arguments import without_processes

STEPS = 6
TIMEOUT_S = 300


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_model_dir, spam_rows, write_jsonl) -> Path:
    folder = tmp_path_factory.mktemp("processes")
    write_jsonl(folder / "train.jsonl", spam_rows(30))
    config = {
        "model": {"name": str(tiny_model_dir), "dtype": "float32"},
        "data": {"train": "train.jsonl", "max_length": 96, "split": {"validation": 0.2, "test": 0.2}},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "train": {"max_steps": STEPS, "batch_size": 8, "learning_rate": 1e-2, "scheduler": "constant",
                  "warmup_ratio": 0.0, "save_every": 3, "eval_every": 3, "threads": 1},
        "evaluate": {"batch_size": 2, "max_new_tokens": 4, "num_examples": 2},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder


def tunesmith(*args: str) -> None:
    """The command, in this process when it runs in one (quicker: nothing to import), else launched."""
    if "--processes" not in args:
        threads = torch.get_num_threads()
        try:
            assert main(list(args)) == 0
        finally:
            torch.set_num_threads(threads)  # the project trains single-threaded; later tests should not
        return
    result = subprocess.run([sys.executable, "-m", "tunesmith", *args], capture_output=True, text=True,
                            timeout=TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-4000:]


def train(project: Path, run: Path, *flags: str) -> Path:
    tunesmith("train", str(project / "config.yaml"), "--run-dir", str(run), *flags)
    return run


def losses(run: Path) -> list[float]:
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [line["loss"] for line in lines if "loss" in line]


def weights(run: Path, step: int = STEPS) -> dict[str, torch.Tensor]:
    return load_file(run / "checkpoints" / f"step-{step:06d}" / "weights" / "adapter_model.safetensors")


def assert_same_training(run: Path, reference: Path, tolerance: float = 1e-5) -> None:
    assert losses(run) == pytest.approx(losses(reference), abs=tolerance)
    mine, theirs = weights(run), weights(reference)
    assert mine.keys() == theirs.keys()
    for name in mine:
        assert torch.allclose(mine[name], theirs[name], atol=tolerance, rtol=0), name


@pytest.fixture(scope="module")
def one_process(project) -> Path:
    return train(project, project / "one-x8")


def test_two_processes_train_what_one_process_trains(project, one_process):
    run = train(project, project / "two-x4", "--processes", "2", "--set", "train.batch_size=4")
    assert_same_training(run, one_process)
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["processes"] == 2 and summary["global_batch"] == 8
    assert len(losses(run)) == STEPS  # rank 0 alone writes metrics


def test_two_processes_train_what_one_process_trains_with_dpo(project, write_jsonl, spam_rows):
    # Pairs: the row's label chosen, the other label rejected; the step's loss is normalized by the pairs of the
    # whole global batch, so 2 processes x 4 pairs must train what 1 process x 8 pairs trains.
    pairs = [{"prompt": row["text"], "chosen": row["label"], "rejected": "ham" if row["label"] == "spam" else "spam"}
             for row in spam_rows(30)]
    write_jsonl(project / "pairs.jsonl", pairs)
    dpo = ["--set", "method=dpo", "--set", "data.train=pairs.jsonl", "--set", "data.format=preference"]
    one = train(project, project / "dpo-one-x8", *dpo)
    two = train(project, project / "dpo-two-x4", "--processes", "2", "--set", "train.batch_size=4", *dpo)
    assert_same_training(two, one)
    assert losses(one)[0] == pytest.approx(0.6931472, abs=1e-6)  # a new adapter starts as its reference: log 2
    # Packed pairs: a global batch of packs, shared by the processes as padded pairs are.
    packed = [*dpo, "--set", "train.packing=true", "--set", "preference.sft_weight=0.5"]
    one = train(project, project / "dpo-packed-one-x4", *packed, "--set", "train.batch_size=4")
    two = train(project, project / "dpo-packed-two-x2", "--processes", "2", "--set", "train.batch_size=2", *packed)
    assert_same_training(two, one)


def test_two_processes_train_what_one_process_trains_when_packing(project):
    packed = ("--set", "train.packing=true")
    one = train(project, project / "packed-one-x8", *packed)
    two = train(project, project / "packed-two-x4", "--processes", "2", "--set", "train.batch_size=4", *packed)
    assert_same_training(two, one)


def test_validation_metrics_over_two_processes_are_those_of_one_process(project):
    measured = ("--set", "train.val_metrics=[accuracy,f1]")
    one = train(project, project / "val-metrics-one-x8", *measured)
    two = train(project, project / "val-metrics-two-x4", "--processes", "2", "--set", "train.batch_size=4", *measured)

    def validations(run: Path) -> list[dict]:
        lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        return [line for line in lines if "val_loss" in line]

    assert [set(line) for line in validations(one)] == [{"step", "val_loss", "val_accuracy", "val_f1"}] * 2
    for mine, theirs in zip(validations(two), validations(one), strict=True):
        assert mine == pytest.approx(theirs, abs=1e-5)


@pytest.mark.parametrize("first, then", [
    (("--processes", "2", "--set", "train.batch_size=4"), ("--set", "train.batch_size=8")),
    (("--set", "train.batch_size=8"), ("--processes", "2", "--set", "train.batch_size=4")),
], ids=["2-then-1", "1-then-2"])
def test_a_checkpoint_resumes_exactly_on_another_number_of_processes(project, one_process, first, then):
    run = project / f"resumed-{len(first)}"
    train(project, run, *first, "--set", f"train.max_steps={STEPS // 2}")
    train(project, run, "--resume", *then, "--set", f"train.max_steps={STEPS}")
    assert_same_training(run, one_process)


def worker_of(launcher: psutil.Process, rank: int) -> psutil.Process | None:
    for child in launcher.children(recursive=True):
        try:
            if child.environ().get("RANK") == str(rank) and "tunesmith" in " ".join(child.cmdline()):
                return child
        except psutil.Error:
            continue
    return None


def test_a_killed_process_ends_the_job_and_resume_continues_it(project):
    run = project / "killed"
    launcher = subprocess.Popen(
        [sys.executable, "-m", "tunesmith", "train", "config.yaml", "--run-dir", str(run), "--processes", "2",
         "--set", "train.batch_size=4", "--set", "train.max_steps=100000", "--set", "train.save_every=2"],
        cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while not (run / "checkpoints" / "step-000002").is_dir():
            assert launcher.poll() is None, launcher.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "no checkpoint written"
            time.sleep(0.05)
        victim = worker_of(psutil.Process(launcher.pid), rank=1)
        assert victim is not None
        victim.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        _, stderr = launcher.communicate(timeout=60)  # bounded: torchrun stops the other process
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert time.monotonic() - killed_at < 60
    assert launcher.returncode != 0
    assert "process 1 of 2 was killed by signal 9; the others were stopped" in stderr
    assert "--resume" in stderr and "Traceback" not in stderr
    assert not any(worker_of(psutil.Process(), rank) for rank in (0, 1))  # nothing left running

    saved = max(int(folder.name.removeprefix("step-")) for folder in (run / "checkpoints").glob("step-*"))
    train(project, run, "--resume", "--processes", "2", "--set", "train.batch_size=4",
          "--set", f"train.max_steps={saved + 2}", "--set", "train.save_every=2")
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines if "loss" in line] == list(range(1, saved + 3))  # no step twice


def test_two_machines_on_loopback_train_what_one_process_trains(project, one_process):
    run = project / "two-machines"
    port = distributed.free_port()
    machines = [
        subprocess.Popen(
            [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_machines", "2",
             "--machine_rank", str(machine), "--num_processes", "2", "--main_process_ip", "127.0.0.1",
             "--main_process_port", str(port), "--mixed_precision", "no", "--dynamo_backend", "no",
             "--num_cpu_threads_per_process", "1", "-m", "tunesmith", "train", "config.yaml", "--run-dir", str(run),
             "--set", "train.batch_size=4"],
            cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "ACCELERATE_CONFIG_FILE": str(project / "no-accelerate-config.yaml")})
        for machine in (0, 1)
    ]
    for machine in machines:
        _, stderr = machine.communicate(timeout=TIMEOUT_S)
        assert machine.returncode == 0, stderr[-4000:]
    assert_same_training(run, one_process)


def test_evaluation_sharded_over_two_processes_equals_one_process(project):
    """Label likelihood (by `tunesmith run`) and generation (by `tunesmith eval`) on 2 processes, then again on 1."""
    tunesmith("run", str(project / "config.yaml"), "--processes", "2", "--set", "train.batch_size=4",
              "--set", f"output.dir={project / 'runs'}", "--set", "output.name=evaluated")
    run = project / "runs" / "evaluated"
    report = (run / "report.md").read_text()
    assert "**processes:** 2 processes, ddp; global batch 8" in report and " steps in " in report
    assert "on 2 processes" in report.split("## Evaluation")[0]  # the summary says it too
    sharded_likelihood = evaluation(run)
    tunesmith("eval", str(run))
    assert_same_evaluation(sharded_likelihood, evaluation(run))

    generate = ("--no-base", "--set", "evaluate.classification_mode=generate")
    tunesmith("eval", str(run), "--processes", "2", *generate)
    sharded_generation = evaluation(run)
    tunesmith("eval", str(run), *generate)
    assert_same_evaluation(sharded_generation, evaluation(run))


def evaluation(run: Path) -> tuple[dict, list[dict]]:
    predictions = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    return json.loads((run / "eval.json").read_text()), predictions


def assert_same_evaluation(sharded: tuple[dict, list[dict]], single: tuple[dict, list[dict]]) -> None:
    (sharded_eval, sharded_rows), (single_eval, single_rows) = sharded, single
    assert [row["location"] for row in sharded_rows] == [row["location"] for row in single_rows]
    for model in ("base", "tuned"):
        assert [row[f"{model}_prediction"] for row in sharded_rows] == \
            [row[f"{model}_prediction"] for row in single_rows]
        for row, expected in zip(sharded_rows, single_rows):
            for label, score in (expected.get(f"{model}_scores") or {}).items():
                assert row[f"{model}_scores"][label] == pytest.approx(score, abs=1e-5)
        if single_eval[model] is None:
            assert sharded_eval[model] is None
            continue
        for name, value in single_eval[model].items():
            if isinstance(value, float):
                assert sharded_eval[model][name] == pytest.approx(value, abs=1e-5), (model, name)
            else:
                assert sharded_eval[model][name] == value, (model, name)


def test_one_process_helpers_change_nothing():
    assert distributed.world_size() == 1 and distributed.is_main()
    assert distributed.shard([1, 2, 3]) == [1, 2, 3]
    assert distributed.gather_shards([1, 2, 3], 3) == [1, 2, 3]
    assert distributed.all_reduce_sum([1, 2.5]) == [1.0, 2.5]
    assert distributed.broadcast({"a": 1}) == {"a": 1}


def test_launched_processes_run_the_command_without_processes():
    assert without_processes(["run", "c.yaml", "--processes", "2", "--set", "a=1"]) == ["run", "c.yaml", "--set",
                                                                                         "a=1"]
    assert without_processes(["train", "--processes=4", "c.yaml"]) == ["train", "c.yaml"]
    assert without_processes(["train", "--proc", "4", "c.yaml"]) == ["train", "c.yaml"]
