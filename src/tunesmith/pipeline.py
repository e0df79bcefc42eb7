"""The whole job in order: data check → train → evaluate (base vs tuned) → export → report."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from pathlib import Path

from tunesmith.config import RunConfig, save_config
from tunesmith.errors import RunError
from tunesmith.run_dir import RunDir

log = logging.getLogger("tunesmith")


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
    candidates = sorted((p for p in base.glob(pattern) if (p / "checkpoints").is_dir()), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise RunError(f"nothing to resume: no run folder matching {base / pattern} has checkpoints")
    return RunDir(candidates[-1])


def check_run_data(config: RunConfig, run: RunDir):
    """Load the splits, write `data_summary.json`, log the findings; return the splits."""
    from tunesmith.data import check_data
    from tunesmith.data.stream import load_run_splits
    from tunesmith.models import load_tokenizer

    # With data.streaming only the held-out files are checked here; training counts the truncation of every
    # streamed row (train_summary.json).
    splits = load_run_splits(config.data)
    report = check_data(splits, load_tokenizer(config.model), config.data.max_length, config.data.loss_on,
                        config.data.check)
    run.data_summary.write_text(json.dumps(report.to_dict(), indent=1), encoding="utf-8")
    sizes = ", ".join(f"{name} {len(getattr(splits, name))}" for name in ("train", "validation", "test"))
    log.info("data: %s format, %s rows", splits.format, sizes)
    if report.has_problems:
        # Printed as is: the report is a table, which a log handler would re-wrap.
        log.warning("data check found problems (details in %s):", run.data_summary)
        print(report.render(), file=sys.stderr)
    return splits


def run_pipeline(config: RunConfig, run: RunDir, resume: bool = False) -> RunDir:
    """Everything `tunesmith run` does, in order, in one run folder."""
    from tunesmith.deploy import export_run
    from tunesmith.evaluate import evaluate_run
    from tunesmith.report import build_report
    from tunesmith.train import train

    started = time.perf_counter()
    stages = {}
    t = time.perf_counter()
    splits = check_run_data(config, run)
    stages["data"] = time.perf_counter() - t
    t = time.perf_counter()
    train(config, run, splits, resume=resume)
    stages["train"] = time.perf_counter() - t
    t = time.perf_counter()
    evaluate_run(run.root)
    stages["evaluate"] = time.perf_counter() - t
    t = time.perf_counter()
    export_run(run.root)
    stages["export"] = time.perf_counter() - t
    timings = {name: round(seconds, 1) for name, seconds in stages.items()}
    timings["total"] = round(time.perf_counter() - started, 1)
    (run.root / "timings.json").write_text(json.dumps(timings, indent=1), encoding="utf-8")
    build_report(run.root)
    log.info("stage times (s): %s", timings)
    return run
