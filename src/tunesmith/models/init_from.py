"""Continuing from a finished run (`model.init_from`): the run whose best weights are this run's base model.

`tunesmith.models.loading.load_base_model` builds those weights; this module finds and checks the runs they come
from (`init_chain`: a run may itself continue from another, so the base is a chain of runs on one pretrained
model), fingerprints them (`base_fingerprint`: the model side of the base-evaluation cache key, and what a run
records of the weights it started from), and refuses a run whose init_from weights changed since it trained on
them (`check_init_from`): its adapter would apply on top of weights it never saw.

Problems with the init_from run itself are `ConfigError`s naming `model.init_from` (the setting points at an
unusable folder); a run whose recorded weights changed is a `RunError` (the run's own state).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tunesmith import distributed
from tunesmith.config.schema import ModelConfig, RunConfig
from tunesmith.config.vocabulary import uses_adapter
from tunesmith.errors import ConfigError, RunError
from tunesmith.json_files import read_json, write_json
from tunesmith.models.fingerprint import model_fingerprint
from tunesmith.models.provision import resolve_model
from tunesmith.run_dir import RunDir, folder_kind

KEY = "model.init_from"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
HINT = "give the folder of a finished tunesmith run (runs/<name>)"


def init_chain(model_config: ModelConfig) -> list[RunDir]:
    """The runs ``model_config`` continues from, nearest first (each checked by `check_source`, and each that
    continues from another by `check_init_from`); [] without `init_from`. Runs that continue from each other in a
    circle are a `ConfigError`."""
    runs: list[RunDir] = []
    configs: list[RunConfig] = []
    folder = model_config.init_from
    while folder is not None:
        run = RunDir(folder)
        if run.root.resolve() in {earlier.root.resolve() for earlier in runs}:
            circle = " -> ".join(str(earlier.root) for earlier in [*runs, run])
            raise ConfigError(KEY, f"the runs continue from each other in a circle ({circle})",
                              "a run can continue only from a run trained before it")
        runs.append(run)
        configs.append(check_source(run))
        folder = configs[-1].model.init_from
    if runs and model_config.name != configs[0].model.name:
        raise ConfigError(KEY, f"{runs[0].root} was trained from {configs[0].model.name!r}, and model.name says "
                          f"{model_config.name!r}",
                          "leave model.name out: a run that continues another takes its model")
    for run, config in zip(runs, configs):
        check_init_from(run, config)  # a run further up changed: the weights of this one no longer fit on it
    return runs


def check_source(run: RunDir) -> RunConfig:
    """The config of ``run``, a run to continue from: a tunesmith run folder that finished training, whose best
    weights are whole. A `ConfigError` naming `model.init_from` otherwise."""
    if not run.root.is_dir():
        raise ConfigError(KEY, f"{run.root} does not exist", HINT)
    if folder_kind(run.root) != "run":
        raise ConfigError(KEY, f"{run.root} is not a tunesmith run folder", HINT)
    try:
        config = run.config()
    except RunError as exc:
        raise ConfigError(KEY, str(exc), HINT) from None
    resume = f"tunesmith train {run.config_path} --resume --run-dir {run.root}"
    if not run.train_summary.is_file():
        raise ConfigError(KEY, f"{run.root} has not finished training (no {run.train_summary.name})",
                          f"finish it first: {resume}")
    try:
        best = run.best_weights()
    except RunError:
        raise ConfigError(KEY, f"{run.root} has no best weights ({run.best} is missing)",
                          f"write them again from its checkpoints: {resume}") from None
    problem = weights_problem(best, uses_adapter(config.method))
    if problem:
        raise ConfigError(KEY, f"the best weights of {run.root} are damaged: {problem}",
                          f"write them again from its checkpoints: {resume}")
    return config


def weights_problem(folder: Path, adapter: bool) -> str | None:
    """What is wrong with the weights in ``folder`` (a PEFT adapter, or a model folder), read as far as their
    safetensors headers: a file cut off (a full disk, an interrupted copy) is shorter than its header says. None
    when they are whole. The tensors themselves are not read: for a full run that would be the whole model."""
    needed = ADAPTER_FILES if adapter else ("config.json",)
    missing = [name for name in needed if not (folder / name).is_file()]
    weights = sorted(folder.glob("*.safetensors"))
    if missing or not weights:
        return f"{', '.join(missing) or '*.safetensors'} missing in {folder}"
    for path in weights:
        problem = safetensors_problem(path)
        if problem:
            return f"{path.name} {problem}"
    return None


def safetensors_problem(path: Path) -> str | None:
    """Why the safetensors file ``path`` is not whole (its header unreadable, or its size not the one its header
    implies: 8 bytes of header length, the header, then the data up to the last tensor's end); None if it is."""
    try:
        with path.open("rb") as file:
            length = int.from_bytes(file.read(8), "little")
            header = json.loads(file.read(length))
        ends = [entry["data_offsets"][1] for name, entry in header.items() if name != "__metadata__"]
        expected = 8 + length + max(ends, default=0)
        size = path.stat().st_size
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        return f"cannot be read (no safetensors header: {' '.join(str(exc).split())[:120]})"
    if size != expected:
        return f"is cut off or padded ({size} bytes; its header lists {expected})"
    return None


def base_fingerprint(model_config: ModelConfig) -> str:
    """sha256 of what decides the weights `load_base_model(model_config)` returns: the pretrained model folder's
    `model_fingerprint`, and, for a run continuing from others, the best weights of each run of its chain. Without
    `init_from` it is the model folder's fingerprint itself."""
    root = model_fingerprint(resolve_model(model_config))
    chain = init_chain(model_config)
    if not chain:
        return root
    digest = hashlib.sha256(f"base\0{root}\0".encode())
    for run in reversed(chain):  # the pretrained model's side first: the order the weights are built in
        digest.update(f"init_from\0{model_fingerprint(run.best)}\0".encode())
    return digest.hexdigest()


def settle_init_from(run: RunDir, config: RunConfig) -> None:
    """When training starts: refuse a run that continues from itself or from a run that continues from it; then
    write ``run``'s record of the weights it starts from (`RunDir.init_from`), or, when it has one (a resume), refuse
    if they changed since (`check_init_from`). Every process checks; the main process writes."""
    if config.model.init_from is None:
        return
    here = run.root.resolve()
    if Path(config.model.init_from).resolve() == here:
        raise ConfigError(KEY, f"{run.root} cannot continue from itself", HINT)
    chain = init_chain(config.model)
    if any(earlier.root.resolve() == here for earlier in chain):
        raise ConfigError(KEY, f"{chain[0].root} continues from {run.root}, so {run.root} cannot continue from it",
                          "a run can continue only from a run trained before it")
    if run.init_from.is_file():
        check_init_from(run, config)
    elif distributed.is_main():
        write_json(run.init_from, {"run": str(chain[0].root.resolve()), "fingerprint": base_fingerprint(config.model)})


def check_init_from(run: RunDir, config: RunConfig | None = None) -> None:
    """A `RunError` when ``run`` continues from a run whose best weights (or those of a run further up its chain)
    changed since ``run`` started training on them; nothing for a run without `model.init_from`."""
    config = config or run.config()
    source = config.model.init_from
    if source is None:
        return
    record = read_json(run.init_from)
    if not (isinstance(record, dict) and isinstance(record.get("fingerprint"), str)):
        raise RunError(f"{run.root} continues from {source} but holds no record of the weights it started from "
                       f"({run.init_from.name})", "train the run again from that run (a new run)")
    if base_fingerprint(config.model) != record["fingerprint"]:
        raise RunError(f"the best weights of {source}, which {run.root} continues from, changed since this run "
                       "started training on them",
                       f"put {Path(source) / 'checkpoints' / 'best'} back as it was, or train a new run from it")
