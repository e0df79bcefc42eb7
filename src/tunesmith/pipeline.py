"""The whole job in order: data check → train → evaluate (base vs tuned) → export → report.

Every stage has one signature, ``stage(config, run) -> summary``, so the pipeline is a list of stages run in a
loop, each timed the same way. The stages of one run share one load of the data splits (`load_run_splits`).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from tunesmith.config import RunConfig, save_config
from tunesmith.data import check_run_data
from tunesmith.deploy import export_run
from tunesmith.errors import RunError
from tunesmith.evaluate import evaluate_run
from tunesmith.json_files import write_json
from tunesmith.report import build_report
from tunesmith.run_dir import RunDir
from tunesmith.train import train_run

log = logging.getLogger("tunesmith")

Stage = Callable[[RunConfig, RunDir], dict]


def stages(resume: bool = False) -> list[tuple[str, Stage]]:
    """The stages of `tunesmith run`, in order (``resume`` continues training from the last checkpoint)."""
    return [
        ("data", check_run_data),
        ("train", partial(train_run, resume=resume)),
        ("evaluate", evaluate_run),
        ("export", export_run),
        ("report", build_report),
    ]


def run_pipeline(config: RunConfig, run: RunDir, resume: bool = False) -> RunDir:
    """Everything `tunesmith run` does, in order, in one run folder. ``timings.json`` holds the seconds of each
    stage done so far and the total, rewritten after every stage (so the report, last, shows the others)."""
    started = time.perf_counter()
    seconds: dict[str, float] = {}
    for name, stage in stages(resume):
        stage_started = time.perf_counter()
        stage(config, run)
        seconds[name] = round(time.perf_counter() - stage_started, 1)
        write_json(run.timings, {**seconds, "total": round(time.perf_counter() - started, 1)})
    log.info("stage times (s): %s", {**seconds, "total": round(time.perf_counter() - started, 1)})
    return run


def create_run(config: RunConfig, config_path: str | Path | None = None) -> RunDir:
    """Make a new run folder under `output.dir` and save the resolved config in it."""
    stem = re.sub(r"[^\w.-]+", "-", Path(config_path).stem) if config_path else "run"
    name = config.output.name or f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    run = RunDir(Path(config.output.dir) / name)
    if run.root.exists() and any(run.root.iterdir()):
        raise RunError(f"run folder {run.root} already exists", "pick another output.name or use --resume")
    run.root.mkdir(parents=True, exist_ok=True)
    save_config(config, run.config_path)
    return run


def find_resumable_run(config: RunConfig, config_path: str | Path) -> RunDir:
    """The newest run folder of this config (by `output.name`, else `<stem>-*`) that holds a checkpoint."""
    base = Path(config.output.dir)
    pattern = config.output.name or f"{Path(config_path).stem}-*"
    candidates = sorted((p for p in base.glob(pattern) if (p / "checkpoints").is_dir()),
                        key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise RunError(f"nothing to resume: no run folder matching {base / pattern} has checkpoints")
    return RunDir(candidates[-1])
