"""The runs under the UI's folder, read as the pages show them: which folders are runs (sweep trials included),
each run's settings, test metrics and status, its training curves, and what differs between runs' configs.

Everything here reads; nothing writes into a run folder. A run that is training right now is read as it grows:
metrics.jsonl through `read_jsonl`, which skips a line cut off mid-write.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from tunesmith.config.loading import read_yaml
from tunesmith.config.vocabulary import ALWAYS_REPORTED, TASK_METRICS, task_of, uses_adapter
from tunesmith.document import format_duration, is_number
from tunesmith.errors import RunError
from tunesmith.json_files import read_json, read_jsonl
from tunesmith.predict.validation_values import STEP_MEASURES
from tunesmith.results.gate import failed_checks, gate_state
from tunesmith.run_dir import RunDir
from tunesmith.sweep_folder import TRIALS_FOLDER, is_sweep_folder, trial_state
from tunesmith.text import count_of

STATUSES = ("running", "done", "pruned", "failed", "stopped")
"""running: a live process of this machine holds the run folder's lock (`RunDir.lock_holder`); done: it has
eval.json (or, a sweep trial, the study says it finished); failed: a stage ended with an error (the pipeline's
``failure.json``; with eval.json too, the newer of the two decides), or a sweep trial the study marked failed;
pruned: a sweep trial the pruner stopped; stopped: none of these (stopped with Ctrl-C, or killed: a killed process
records nothing)."""


@dataclass(frozen=True)
class RunRow:
    """One row of the runs table."""

    name: str
    """The run folder's path under the UI's folder (``sweep/trials/trial-0003`` for a sweep trial)."""
    task: str | None
    model: str | None
    method: str | None
    settings: dict[str, object]
    """The key settings: learning rate, steps or epochs, LoRA r and alpha (adapter methods)."""
    metrics: dict[str, float]
    """Test metrics of the tuned model (eval.json), headline metrics of the task first."""
    deltas: dict[str, float]
    """Tuned minus base, for the metrics both have."""
    status: str
    gate: str
    """The release gate in one word (`tunesmith.results.gate.GATE_STATES`: passed, failed, stale, not gated,
    unreadable)."""
    gate_failed: list[str]
    """The names of the checks that failed (a failed or stale gate)."""
    gate_line: str
    """The gate in one line (`tunesmith.results.gate.gate_line`), or what is wrong with an unreadable gate.json."""


def find_runs(runs_dir: Path) -> dict[str, RunDir]:
    """Every run folder directly under ``runs_dir`` and every trial of a sweep folder there, by name, sorted. A
    symlink (the `current` marker of `tunesmith promote`) is not a run of its own: its run is listed by name."""
    found: dict[str, RunDir] = {}
    if not runs_dir.is_dir():
        return found
    for child in sorted(runs_dir.iterdir()):
        if child.is_symlink() or not child.is_dir():
            continue
        if RunDir(child).config_path.is_file():
            found[child.name] = RunDir(child)
        if is_sweep_folder(child):
            for trial in sorted((child / TRIALS_FOLDER).iterdir()):
                if RunDir(trial).config_path.is_file():
                    found[f"{child.name}/{TRIALS_FOLDER}/{trial.name}"] = RunDir(trial)
    return found


def raw_config(run: RunDir) -> dict:
    """The run's resolved config.yaml as a plain mapping ({} when unreadable: the table still lists the run; its
    page says what is wrong)."""
    try:
        raw = read_yaml(run.config_path.read_text(encoding="utf-8"), str(run.config_path))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    return raw if isinstance(raw, dict) else {}


def read_eval(run: RunDir) -> dict | None:
    """eval.json; None when missing, or damaged (the run's page says what is wrong with it)."""
    try:
        result = read_json(run.eval_json)
    except RunError:
        return None
    return result if isinstance(result, dict) else None


def run_status(run: RunDir) -> str:
    """One of `STATUSES`. A folder with both eval.json and failure.json is what its newer file says: a stage that
    failed after the evaluation (the gate, the report, an export) leaves it failed; an evaluation after a failure
    (the run resumed and finished) leaves it done, the failure a thing of the past."""
    holder = run.lock_holder()
    if holder is not None and holder.alive:
        return "running"
    if run.eval_json.is_file() and run.failure.is_file():
        return "failed" if failed_after_evaluation(run) else "done"
    if run.eval_json.is_file():
        return "done"
    if run.failure.is_file():
        return "failed"
    state = trial_state(run.root)
    # The study's word where it is a status, but "running" (or "queued") without a live lock holder is a worker that
    # died: stopped.
    return state if state in STATUSES and state != "running" else "stopped"


def failed_after_evaluation(run: RunDir) -> bool:
    """Whether failure.json was written after eval.json; False when either is missing. A tie (file times tick in
    milliseconds) goes to the evaluation: a run that failed and was then evaluated at once is the likelier story."""
    try:
        return run.failure.stat().st_mtime_ns > run.eval_json.stat().st_mtime_ns
    except OSError:
        return False


def run_row(name: str, run: RunDir) -> RunRow:
    raw = raw_config(run)
    result = read_eval(run) or {}
    train, lora = _section(raw, "train"), _section(raw, "lora")
    method = raw.get("method")
    settings: dict[str, object] = {"lr": train.get("learning_rate")}
    if train.get("max_steps"):
        settings["steps"] = train["max_steps"]
    else:
        settings["epochs"] = train.get("epochs")
    if method and uses_adapter(method):
        settings |= {"r": lora.get("r"), "alpha": lora.get("alpha")}
    tuned = result.get("tuned") or {}
    task = result.get("task") or _task_from_config(run, raw)
    metrics = {key: tuned[key] for key in headline_metrics(task, tuned) if is_number(tuned.get(key))}
    deltas = {key: value for key, value in (result.get("delta") or {}).items() if key in metrics}
    gate, gate_result, gate_line = gate_state(run.root)
    return RunRow(name=name, task=task, model=_section(raw, "model").get("name"), method=method,
                  settings=settings, metrics=metrics, deltas=deltas, status=run_status(run), gate=gate,
                  gate_failed=[check["name"] for check in failed_checks(gate_result)] if gate_result else [],
                  gate_line=gate_line)


def _section(raw: dict, name: str) -> dict:
    """A section of a config read as YAML ({} when it is missing or, in a hand-edited file, not a mapping)."""
    section = raw.get(name)
    return section if isinstance(section, dict) else {}


def headline_metrics(task: str | None, metrics: dict) -> list[str]:
    """The task's metrics in their usual order, then the loss: what the runs table and compare show first."""
    ordered = [*TASK_METRICS.get(task or "", ()), *ALWAYS_REPORTED]
    return [key for key in ordered if key in metrics] + [key for key in metrics if key not in ordered
                                                        and is_number(metrics[key])]


def _task_from_config(run: RunDir, raw: dict) -> str | None:
    """Before evaluation the task follows from `evaluate.task` and the data check's row format."""
    try:
        summary = read_json(run.data_summary) or {}
    except RunError:
        summary = {}
    requested = _section(raw, "evaluate").get("task", "auto")
    row_format = summary.get("format") if isinstance(summary, dict) else None
    return task_of(requested, row_format) if row_format or requested != "auto" else None


# ---- curves and configs ------------------------------------------------------------------------------------------


def curves(run: RunDir) -> dict[str, list[list[float]]]:
    """Every numeric series of metrics.jsonl against the step: ``loss`` and a preference run's rewards and accuracy
    (`STEP_MEASURES`) per step, ``val_loss`` and the other validation values, each as ``[[step, value], ...]``
    (non-finite values, written as null, are left out)."""
    series: dict[str, list[list[float]]] = {}
    for line in read_jsonl(run.metrics):
        if not isinstance(line, dict) or not is_number(line.get("step")):
            continue
        for key in ("loss", *STEP_MEASURES, *sorted(k for k in line if k.startswith("val_"))):
            if is_number(line.get(key)):
                series.setdefault(key, []).append([line["step"], line[key]])
    return series


def progress_note(run: RunDir, status: str) -> str:
    """Training's progress in one line under the run's curves: ``step 12 of 200, about 3 minutes left`` while it
    trains, ``200 training steps`` once it is done, ``stopped at step 12 of 200`` otherwise."""
    lines = [line for line in read_jsonl(run.metrics)
             if isinstance(line, dict) and is_number(line.get("step")) and is_number(line.get("loss"))]
    if not lines:
        return "no training step logged yet"
    step = int(lines[-1]["step"])
    total = planned_steps(run, lines[-1])
    of_total = f"step {step:,} of {total:,}" if total else f"step {step:,}"
    if status == "running":
        left = time_left(lines, total)
        return of_total + (f", {left}" if left else "")
    if status == "done" or not total or step >= total:
        return count_of(step, "training step") + (f" of {total:,} planned" if total and step < total else "")
    return f"{status} at {of_total}"


def planned_steps(run: RunDir, last_line: dict) -> int | None:
    """The optimizer steps the run plans: train_summary.json's (a finished run), else `train.max_steps`, else the
    budget of its newest checkpoint, else `train.epochs` times the steps per epoch that the last metrics line's
    ``epoch`` fraction implies; None when none of these says (``epochs: auto`` before the first checkpoint)."""
    summary = _read_mapping(run.train_summary)
    if is_number(summary.get("planned_steps")):
        return int(summary["planned_steps"])
    train = _section(raw_config(run), "train")
    if is_number(train.get("max_steps")) and train["max_steps"] > 0:
        return int(train["max_steps"])
    checkpoints = sorted((run.root / "checkpoints").glob("step-*/trainer_state.json"), reverse=True)
    budget = _read_mapping(checkpoints[0]).get("budget") if checkpoints else None
    if isinstance(budget, dict) and is_number(budget.get("steps")):
        return int(budget["steps"])
    epochs, epoch, step = train.get("epochs"), last_line.get("epoch"), last_line["step"]
    if is_number(epochs) and is_number(epoch) and epoch > 0:
        return max(int(step), math.ceil(epochs * round(step / epoch)))
    return None


def time_left(lines: list[dict], total: int | None, window: int = 20) -> str | None:
    """How long the rest of the steps take at the pace of the last ``window`` logged steps (their ``elapsed_s``):
    ``about 3 minutes left``; None without a total or a pace."""
    timed = [line for line in lines[-window:] if is_number(line.get("elapsed_s"))]
    if not total or len(timed) < 2 or timed[-1]["step"] <= timed[0]["step"]:
        return None
    per_step = (timed[-1]["elapsed_s"] - timed[0]["elapsed_s"]) / (timed[-1]["step"] - timed[0]["step"])
    seconds = max(0.0, (total - timed[-1]["step"]) * per_step)
    if seconds < 60:
        return "under a minute left"
    if seconds < 3600:
        return f"about {count_of(round(seconds / 60), 'minute')} left"
    return f"about {format_duration(seconds)} left"


def _read_mapping(path: Path) -> dict:
    """A JSON object of the run folder; {} when it is missing, damaged or not an object (a note is no place for an
    error)."""
    try:
        value = read_json(path)
    except RunError:
        return {}
    return value if isinstance(value, dict) else {}


def flatten(mapping: dict, prefix: str = "") -> dict[str, object]:
    """``{"train": {"learning_rate": 1e-4}}`` → ``{"train.learning_rate": 1e-4}`` (lists stay values)."""
    flat: dict[str, object] = {}
    for key, value in mapping.items():
        if isinstance(value, dict) and value:
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


WHERE_WRITTEN = ("output.dir", "output.name")


def config_differences(configs: dict[str, dict]) -> list[tuple[str, list[object]]]:
    """``(dotted key, [value in each run])`` for the keys whose values are not the same in every run, in the
    order of the first run's config (a key a run lacks shows as None). Where a run was written
    (`WHERE_WRITTEN`) is left out: every run differs there, and it says nothing about the model."""
    flat = {name: flatten(raw) for name, raw in configs.items()}
    keys = [key for key in dict.fromkeys(key for values in flat.values() for key in values)
            if key not in WHERE_WRITTEN]
    rows = []
    for key in keys:
        values = [values.get(key) for values in flat.values()]
        if any(value != values[0] for value in values[1:]):
            rows.append((key, values))
    return rows
