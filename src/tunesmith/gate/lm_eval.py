"""`gate.lm_eval_tasks`: lm-evaluation-harness (the `lm-eval` extra) on the tuned model and on its base, for the
general-ability check. The tuned model is the merged model the export ships (an adapter is folded into the base
in memory, as `tunesmith export` merges it); the two models are loaded one after the other, never together.

Offline by design: a task's data must be in the local Hugging Face datasets cache, or the task must read local
files (a task YAML in `gate.lm_eval_include_path` with ``dataset_path: json`` and ``data_files``). lm-eval is
imported inside the functions that use it: it is optional, and slow to import.
"""

from __future__ import annotations

import gc
import math

import torch

from tunesmith.config.gate_section import GateConfig
from tunesmith.config.schema import RunConfig
from tunesmith.errors import ConfigError
from tunesmith.extras import require_extras
from tunesmith.models import load_base_model, load_tokenizer, load_tuned_model
from tunesmith.run_dir import RunDir
from tunesmith.text import shorten

_TASKS_KEY = "gate.lm_eval_tasks"


def lm_eval_scores(config: RunConfig, run: RunDir) -> dict:
    """Each task of `gate.lm_eval_tasks` scored on the tuned (merged) model and on the base: ``{"tasks": {name:
    {"metric", "higher_is_better", "base", "tuned", "kept", "stderr": {"base", "tuned"}, "rows"}}, "threshold":
    gate.min_lm_eval_kept, "limit": gate.lm_eval_limit}``. ``metric`` is the first metric the task's config lists;
    ``kept`` is tuned / base (base / tuned where lower is better), None when the base scores 0. A missing extra, an
    unknown task or a task whose data is not on this machine is a one-line error."""
    require_extras(_TASKS_KEY, "lm-eval")
    gate = config.gate or GateConfig()
    manager = _task_manager(gate)
    model, tokenizer = load_tuned_model(run.root, merge=True)
    tuned = _evaluate(model, tokenizer, gate, manager, config.evaluate.batch_size)
    del model
    free_model_memory()
    model, _ = load_base_model(config.model)
    base = _evaluate(model, load_tokenizer(config.model), gate, manager, config.evaluate.batch_size)
    del model
    free_model_memory()
    tasks = {name: _task_scores(name, base, tuned) for name in tuned["results"]}
    return {"tasks": tasks, "threshold": gate.min_lm_eval_kept, "limit": gate.lm_eval_limit}


def _task_manager(gate: GateConfig):
    """lm-eval's task index, with `gate.lm_eval_include_path`'s tasks; every named task must be in it."""
    from lm_eval.tasks import TaskManager

    include = gate.lm_eval_include_path
    if include is not None and not include.is_dir():
        raise ConfigError("gate.lm_eval_include_path", f"{include} is not a folder",
                          "give the folder that holds the task YAML files")
    manager = None
    if include is not None:
        # Indexing lm-eval's own thousands of task files takes seconds: skipped when the include path has them all.
        manager = TaskManager(include_path=str(include), include_defaults=False)
        if not set(gate.lm_eval_tasks) <= set(manager.all_tasks):
            manager = None
    manager = manager or TaskManager(include_path=str(include) if include else None)
    unknown = [name for name in gate.lm_eval_tasks if name not in manager.all_tasks]
    if unknown:
        where = f" or in {include}" if include else ""
        raise ConfigError(_TASKS_KEY, f"lm-eval knows no task {', '.join(map(repr, unknown))}{where}",
                          "`lm_eval --tasks list` lists its tasks; a task on local files goes in a YAML file in "
                          "gate.lm_eval_include_path")
    return manager


def _evaluate(model, tokenizer, gate: GateConfig, manager, batch_size: int) -> dict:
    """lm-eval's results dict for ``model`` on the configured tasks."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    device = next(model.parameters()).device
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device=str(device))
    try:
        return simple_evaluate(model=lm, tasks=list(gate.lm_eval_tasks), limit=gate.lm_eval_limit,
                               task_manager=manager, log_samples=False, bootstrap_iters=gate.resamples,
                               random_seed=gate.seed, numpy_random_seed=gate.seed, torch_random_seed=gate.seed,
                               fewshot_random_seed=gate.seed)
    except (OSError, ConnectionError) as exc:  # datasets' "not in the cache, and offline" errors are OSErrors
        raise ConfigError(_TASKS_KEY, f"cannot load a task's data: {shorten(str(exc), 200)}",
                          "lm-eval reads each task's data from the local Hugging Face cache (run the task once "
                          "with network access) or from local files named by a task YAML in "
                          "gate.lm_eval_include_path") from None


def _task_scores(name: str, base: dict, tuned: dict) -> dict:
    metric, key = _main_metric(name, tuned)
    higher_is_better = bool(tuned.get("higher_is_better", {}).get(name, {}).get(metric, True))
    tuned_value, base_value = float(tuned["results"][name][key]), float(base["results"][name][key])
    top, bottom = (tuned_value, base_value) if higher_is_better else (base_value, tuned_value)
    stderr_key = key.replace(",", "_stderr,", 1)
    return {
        "metric": metric, "higher_is_better": higher_is_better, "base": base_value, "tuned": tuned_value,
        "kept": top / bottom if bottom else None,
        "stderr": {"base": _number(base["results"][name].get(stderr_key)),
                   "tuned": _number(tuned["results"][name].get(stderr_key))},
        "rows": int(tuned.get("n-samples", {}).get(name, {}).get("effective", 0)) or None,
    }


def _main_metric(name: str, results: dict) -> tuple[str, str]:
    """The metric a task is judged on, and its key in lm-eval's results (``metric,filter``): the first metric its
    config lists, else (a group) its first reported metric."""
    listed = [entry["metric"] for entry in results.get("configs", {}).get(name, {}).get("metric_list", [])
              if isinstance(entry.get("metric"), str)]
    keys = [key for key, value in results["results"][name].items()
            if "," in key and "_stderr," not in key and isinstance(value, (int, float))]
    for metric in listed:
        for key in keys:
            if key.split(",", 1)[0] == metric:
                return metric, key
    if not keys:
        raise ConfigError(_TASKS_KEY, f"lm-eval reported no metric for {name!r}")
    return keys[0].split(",", 1)[0], keys[0]


def _number(value) -> float | None:
    """A stderr as a float; lm-eval writes "N/A" where it has none."""
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def free_model_memory() -> None:
    """Give a deleted model's memory back (the next model loads in its place)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
