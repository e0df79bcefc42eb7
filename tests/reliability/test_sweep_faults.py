"""`tunesmith sweep` under faults: workers and resumes never repeat settings, two processes on one study evaluate
the winner once, Optuna-invalid or huge search spaces and bad storage URLs are one-line errors before anything is
written, an alias bomb is not expanded, and no secret from the command line lands in a trial's folder."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import yaml

from tunesmith.config import validate_config
from tunesmith.config.search_space import parse_space
from tunesmith.experiments.sweep import run_sweep
from tunesmith.experiments.sweep_report import sweep_document
from tunesmith.json_files import read_json, read_jsonl

SOURCE = Path(__file__).resolve().parents[2] / "src"
QUICK = {"max_steps": 2, "eval_every": 1, "save_every": 1}


def sweep_yaml(project: Path, params: dict, train: dict | None = None, **sweep) -> Path:
    """``project``'s config with a sweep of ``params`` (`pruner: none`, so every trial finishes), as sweep.yaml."""
    config = yaml.safe_load((project / "config.yaml").read_text())
    config["train"].update(train or QUICK)
    config["output"] = {"dir": str(project / "runs")}
    config["sweep"] = {"trials": 3, "pruner": "none", "params": params, **sweep}
    path = project / "sweep.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def study_of(folder: Path) -> list[optuna.trial.FrozenTrial]:
    record = read_json(folder / "sweep.json")
    return optuna.load_study(study_name=record["study"], storage=record["storage"]).get_trials(deepcopy=False)


# Wide enough that the log (rich, on stderr) writes each message on one line.
ENV = {**os.environ, "PYTHONPATH": str(SOURCE), "COLUMNS": "1000"}


def sweep_process(config: Path, *extra: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tunesmith", "sweep", str(config), *extra], env=ENV, **popen)


def wait_for(find, seconds: float = 180):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = find()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


# ---- settings never repeated ---------------------------------------------------------------------------------------


def test_two_workers_explore_four_distinct_settings(project):
    """Each worker process started its sampler from sweep.seed: 4 trials explored 2 settings, twice each."""
    config = sweep_yaml(project, {"train.learning_rate": {"log_uniform": [1e-3, 5e-2]}}, trials=4)
    summary = run_sweep(str(config), [], workers=2)
    trials = study_of(Path(summary["folder"]))
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    assert len({t.user_attrs["pid"] for t in trials}) == 2  # both workers ran trials
    assert len({t.params["train.learning_rate"] for t in trials}) == 4
    assert len({t.value for t in trials}) == 4


def test_a_killed_trials_settings_are_not_drawn_again_after_resume(project):
    """A resume restarted the sampler from sweep.seed, and the dead trial's settings were queued again."""
    config = sweep_yaml(project, {"train.learning_rate": [2e-3, 5e-3, 1e-2, 2e-2]},
                        train={"max_steps": 40, "eval_every": 10, "save_every": 10})  # long enough to be killed
    process = sweep_process(config, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        metrics = wait_for(lambda: [path for path in (project / "runs").glob("sweep-sweep-*/trials/trial-0001/"
                                                                            "metrics.jsonl")
                                    if any("val_loss" in line for line in read_jsonl(path))])
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    folder = metrics[0].parents[2]
    dead = study_of(folder)[1]
    assert dead.state.name == "RUNNING"
    resumed = subprocess.run([sys.executable, "-m", "tunesmith", "sweep", str(config), "--resume", "--set",
                              "train.max_steps=2", "--set", "train.eval_every=1"],
                             env=ENV, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert ("trial 1 was left unfinished by a worker that died: marked failed; its settings are not tried again"
            in resumed.stderr)
    trials = study_of(folder)
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert trials[1].user_attrs["error"] == f"its worker (pid {process.pid}) died; its settings are not tried again"
    rates = [t.params["train.learning_rate"] for t in trials]
    assert len(set(rates)) == 4 and dead.params["train.learning_rate"] not in rates[2:]


def test_a_space_smaller_than_the_trials_ends_when_every_setting_was_tried(project, caplog):
    config = sweep_yaml(project, {"train.learning_rate": [5e-3, 2e-2]}, trials=3)
    with caplog.at_level(logging.WARNING, logger="tunesmith"):
        summary = run_sweep(str(config), [])
    assert ("all 2 settings of the search space were tried: the search ends with 2 finished trials, not 3 "
            "(sweep.trials)") in caplog.messages
    trials = study_of(Path(summary["folder"]))
    assert sorted(t.params["train.learning_rate"] for t in trials) == [5e-3, 2e-2]


def test_the_report_shows_repeated_settings_once(tmp_path):
    """An older study may hold one setting twice (the workers' repeats): one row, naming the other trial."""
    config = validate_config({"data": {"train": "t.jsonl"}, "sweep": {"params": {"lora.r": [2, 4]}}})
    sweep = SimpleNamespace(config=config, params=parse_space(config), folder=tmp_path / "s", metric="val_loss",
                            direction="minimize", started=time.time())
    study = optuna.create_study()
    for r, value in [(2, 0.5), (4, 0.7), (2, 0.5)]:
        study.add_trial(optuna.trial.create_trial(params={"lora.r": r}, value=value, distributions={
            "lora.r": optuna.distributions.CategoricalDistribution([2, 4])}))
    document = sweep_document(sweep, study, study.best_trial, {"models": {}})
    trials = next(section for section in document.sections if section.title == "Trials").blocks[0]
    assert [row[:3] for row in trials.rows] == [["0", "done", "2"], ["1", "done", "4"]]
    assert trials.rows[0][-1] == "the same settings as trial 2"
    summary = dict(document.sections[0].blocks[0].items)
    assert summary["trials"] == "3 done, 0 pruned, 0 failed (1 of them repeating another trial's settings)"


# ---- the winner evaluated once -------------------------------------------------------------------------------------


def test_two_sweep_processes_on_one_study_evaluate_and_export_the_winner_once(project):
    config = sweep_yaml(project, {"train.learning_rate": [5e-3, 2e-2]}, trials=2)
    folder = project / "runs" / "shared-sweep"
    first = sweep_process(config, "--sweep-dir", str(folder), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
    wait_for(lambda: (folder / "sweep.json").is_file())
    second = sweep_process(config, "--sweep-dir", str(folder), "--resume", stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    outputs = [process.communicate(timeout=600) for process in (first, second)]
    assert [process.returncode for process in (first, second)] == [0, 0], outputs
    logs = "".join(err for _, err in outputs)
    assert logs.count("evaluating it on the test split") == 1
    evaluated = read_json(folder / "sweep.json")["evaluated"]
    by = f"pid {evaluated['pid']} on {evaluated['host']} at {evaluated['at']}"
    assert evaluated["pid"] in (first.pid, second.pid)
    other = second if evaluated["pid"] == first.pid else first
    assert f"evaluated on the test split and exported by {by} (not again)" in outputs[[first, second].index(other)][0]
    assert len(study_of(folder)) == 2


# ---- search spaces Optuna refuses, or that would take gigabytes ----------------------------------------------------


@pytest.mark.parametrize("params, line", [
    ({"train.max_steps": {"int": [1, 64], "step": 2, "log": True}},
     "config: sweep.params.train.max_steps: a log scale takes no step (got step 2): Optuna spreads it over orders "
     "of magnitude (drop log, or drop step)"),
    ({"train.seed": {"int": [0, 64], "log": True}},
     "config: sweep.params.train.seed: a log scale needs a positive low end, got 0 (start the range above 0)"),
    ({"lora.dropout": {"uniform": [-0.1, 0.2], "log": True}},
     "config: sweep.params.lora.dropout: a log scale needs a positive low end, got -0.1 (start the range above 0)"),
    ({"train.learning_rate": {"uniform": [1e-3, 1e-4]}},
     "config: sweep.params.train.learning_rate: uniform: low (0.001) must be below high (0.0001)"),
    ({"lora.r": []}, "config: sweep.params.lora.r: the list of choices is empty"),
    ({"lora.r": [4, 8, 4]}, "config: sweep.params.lora.r: 4 is listed twice (list each choice once)"),
    ({"lora.r": {"choices": [4, 8], "log": True}},
     "config: sweep.params.lora.r: log is true or false, for int and uniform ranges (log_uniform is log already)"),
    ({"train.learning_rate": {"uniform": [1e-4, ".inf"]}},
     "config: sweep.params.train.learning_rate: uniform takes [low, high], two finite numbers, got [0.0001, inf]"),
])
def test_an_optuna_invalid_space_is_a_config_error_before_anything_is_written(project, cli, params, line):
    """Optuna's own check fired inside the first trial: a traceback, and the trial left RUNNING."""
    config = sweep_yaml(project, params)
    text = config.read_text().replace("'.inf'", ".inf")  # safe_dump quotes the string; YAML's infinity is bare
    config.write_text(text)
    assert cli("sweep", str(config)) == (2, "", f"tunesmith: error: {line}")
    assert not (project / "runs").exists()


def test_a_wide_integer_grid_is_refused_at_once(project, cli):
    """Listing the grid of 0..10**9 took gigabytes."""
    config = sweep_yaml(project, {"train.seed": {"int": [0, 10**9]}}, sampler="grid")
    began = time.monotonic()
    assert cli("sweep", str(config)) == (2, "", "tunesmith: error: config: sweep.params.train.seed: the grid holds "
                                                "1,000,000,001 settings (train.seed: 1,000,000,001 values), over "
                                                "the limit of 100,000 (give a larger step or fewer choices, or use "
                                                "sampler: tpe or random)")
    assert time.monotonic() - began < 5 and not (project / "runs").exists()


def test_an_alias_bomb_in_sweep_params_is_refused_without_expanding_it(project, cli):
    """1 KB of aliases stood for a billion values, and the sweep dumped them all (142 s, 4 GB)."""
    text = "&b0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"
    for level in range(1, 9):
        text = f"&b{level} [{text}, " + ", ".join([f"*b{level - 1}"] * 9) + "]"
    config = sweep_yaml(project, {"lora.target_modules": ["BOMB"]})
    config.write_text(config.read_text().replace("- BOMB", "- " + text))
    began = time.monotonic()
    code, _, line = cli("sweep", str(config))
    # Refused here, or at load once YAML aliases are bounded there (tunesmith.config.loading): never expanded.
    assert code == 2 and line.startswith("tunesmith: error: config: ")
    assert time.monotonic() - began < 5 and not (project / "runs").exists()
    bomb = [[[[["q_proj"] * 10] * 10] * 10] * 10] * 10  # the same built in Python: no YAML loader to bound it
    with pytest.raises(Exception) as refused:
        parse_space(validate_config({"data": {"train": "t.jsonl"},
                                     "sweep": {"params": {"lora.target_modules": [bomb]}}}))
    assert str(refused.value) == ("config: sweep.params: holds more than 10,000 values (counting each use of a YAML "
                                  "alias) (list the choices themselves; a search space needs few values)")


# ---- storage -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url, line", [
    ("not a url", "config: --storage: is not a database URL (e.g. postgresql://user:password@host/db or "
                  "sqlite:////absolute/path/sweep.db)"),
    ("sqlite:////nonexistent-folder/studies.db", "cannot open the sweep's study storage "
     "sqlite:////nonexistent-folder/studies.db: unable to open database file (check the URL, that the database "
     "server is up, and that its driver is installed)"),
    ("postgresql://tuner:s3cret@db.invalid/studies", "cannot open the sweep's study storage "
     "postgresql://tuner:***@db.invalid/studies: "),
])
def test_a_bad_storage_url_is_one_line_before_anything_is_written(project, cli, url, line):
    """sweep.json was written first; then a traceback from SQLAlchemy (or from a missing database driver)."""
    config = sweep_yaml(project, {"lora.r": [2, 4]})
    code, out, error = cli("sweep", str(config), "--storage", url)
    assert code != 0 and error.startswith(f"tunesmith: error: {line}") and "s3cret" not in error
    assert not (project / "runs").exists()


def test_a_sweep_trials_lock_holds_no_secret_from_the_command_line(project):
    """A trial's `.lock` (mode 0644, left behind by a killed worker) held the whole command line, --storage URL
    included. NEEDS the run_dir.py change of this issue (lock files mode 0600, without the command line), made by
    another branch: it fails on a branch without it."""
    config = sweep_yaml(project, {"train.learning_rate": [5e-3, 2e-2]},
                        train={"max_steps": 40, "eval_every": 10, "save_every": 10})
    url = f"sqlite:///{project / 'studies-s3cret.db'}"  # a name standing for a password: sqlite URLs take none
    process = sweep_process(config, "--storage", url, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        lock = wait_for(lambda: [path for path in (project / "runs").glob("sweep-sweep-*/trials/trial-0000/.lock")
                                 if path.stat().st_size])[0]
    finally:
        process.send_signal(signal.SIGKILL)  # a killed worker leaves its lock record behind
        process.wait(30)
    assert oct(lock.stat().st_mode & 0o777) == "0o600"
    for path in lock.parents[1].rglob("*"):  # sweep.json names the SQLite file, which is where the study is
        if path.is_file() and path.suffix not in (".safetensors", ".bin", ".pt", ".db"):
            assert b"s3cret" not in path.read_bytes(), path
