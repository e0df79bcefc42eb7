"""What `tunesmith serve` serves: runs (or a plain model folder) loaded once, each under the name a request's
``model`` field picks.

Runs of adapter methods (LoRA, DoRA) on one base share it: the base is loaded once and every run's adapter is
added to it as a named peft adapter, so N runs cost one model's memory plus N small adapters, and requests for
different runs still decode in one batch. The base itself is served too, as ``base``. A full fine-tune, or a
model folder (an export's ``merged/``, the default model, a Hub id), is served alone. A run's base is the weights
it trained on (`effective_base`): for a run with `model.init_from`, that run's merged weights, so it shares a
base only with runs that continue from the same run, never with runs of the plain pretrained model; its ``base``
is that model.

Each served name keeps the run's chat template, system prompt and task, so a request is rendered exactly as
evaluation rendered the test rows; and what evaluation measured of it (its ``reference.json``: the calibration
temperature of its label probabilities, the instruction novelty is measured without), its ``serve.min_confidence``,
and, when asked for (``embedder``), the novelty index of its training inputs. A run without what novelty needs (no
reference, novelty not measured, no ``novelty/`` index, the rag extra missing) is served without it, and the
server's log says why in one line.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tunesmith.config import ServeConfig, override_section
from tunesmith.config.schema import DataConfig, ModelConfig, RunConfig
from tunesmith.config.vocabulary import BASE_MODEL, task_of, uses_adapter
from tunesmith.data.example import Message
from tunesmith.data.formats import classification_user_turn
from tunesmith.errors import RunError, TunesmithError
from tunesmith.extras import require_extras
from tunesmith.json_files import read_json
from tunesmith.models import (
    load_base_model,
    load_model_folder,
    load_tokenizer,
    model_folder,
    portable_name,
    stop_token_ids,
)
from tunesmith.models.init_from import check_init_from
from tunesmith.models.loading import load_adapter
from tunesmith.results.reference import Reference, read_reference
from tunesmith.retrieval.dense import Embedder, SentenceEmbedder
from tunesmith.retrieval.novelty import EMBEDDING_SETTING, NoveltyIndex
from tunesmith.run_dir import RunDir
from tunesmith.serve.engine import BASE_ADAPTER

log = logging.getLogger("tunesmith")
EmbedderFactory = Callable[[str], Embedder]
"""``monitor.embedding_model`` → the embedder novelty is measured with (`sentence_embedder`; a test's fake)."""


@dataclass(frozen=True)
class ServedModel:
    name: str
    tokenizer: object
    """This name's tokenizer, with the chat template its run trained with."""
    adapter: str | None
    """The peft adapter that answers for this name (`BASE_ADAPTER` for the base), None without adapters."""
    system_prompt: str | None
    task: str
    labels: list[str] | None
    data: DataConfig | None
    run: Path | None
    reference: Reference | None = None
    """What evaluation measured of the run (`tunesmith.results.reference`); None for the base, a model folder, or a
    run evaluated before references existed."""
    min_confidence: float | None = None
    """``serve.min_confidence``: answers less confident than this are flagged ``low_confidence``."""
    novelty: NoveltyIndex | None = None
    """The run's training inputs, each request's input is scored against; None: novelty is not measured."""

    @property
    def temperature(self) -> float | None:
        """The calibration temperature of the run's label probabilities; None: they are not calibrated."""
        return self.reference.temperature if self.reference is not None else None

    @property
    def run_folder(self) -> str | None:
        """The run folder that answers for this name (resolved), as `/v1/models` and the request log name it; None
        for the base and a plain model folder."""
        return str(self.run) if self.run is not None else None

    def conversation(self, messages: list[Message]) -> list[Message]:
        """``messages`` with the run's system prompt first, unless the client sent its own."""
        if self.system_prompt and not any(message["role"] == "system" for message in messages):
            return [{"role": "system", "content": self.system_prompt}, *messages]
        return list(messages)

    def classification_prompt(self, text: str) -> list[Message]:
        """The prompt evaluation gave a test row with ``text`` (instruction naming the labels, system prompt)."""
        return self.conversation([{"role": "user", "content": classification_user_turn(self.data, self.labels, text)}])

    def describe(self) -> dict:
        return {"run": self.run_folder, "task": self.task, "labels": self.labels,
                "adapter": self.adapter}


@dataclass
class Served:
    model: object
    models: dict[str, ServedModel]
    primary: str
    shadow: str | None
    stop_ids: frozenset[int]
    context_length: int
    base_model: str

    def manifest(self) -> dict:
        """What `tunesmith.monitor.request_log.write_manifest` records for the monitor and the feedback export."""
        return {"models": {name: served.describe() for name, served in self.models.items()},
                "primary": self.primary, "shadow": self.shadow, "base_model": self.base_model}


def load_served(targets: list[str], shadow: str | None = None, device=None, serve_overrides: list[str] = (),
                embedder: EmbedderFactory | None = None) -> Served:
    """Load what ``targets`` name (run folders, or one model folder / ``default`` / Hub id) and ``shadow`` (a run
    whose answers are logged beside the first target's). ``serve_overrides`` (``serve.KEY=VALUE``, `serve_settings`)
    apply to every served name; ``embedder`` makes each run's novelty index load (None: novelty is not measured)."""
    if not targets:
        raise RunError("nothing to serve", "give a run folder (or a model folder)")
    runs = [RunDir(target) for target in [*targets, *([shadow] if shadow else [])]]
    if not all(run.config_path.is_file() for run in runs):
        if len(targets) > 1 or shadow:
            plain = [str(run.root) for run in runs if not run.config_path.is_file()]
            raise RunError(f"{', '.join(plain)} is not a run folder; several models or a shadow can only be runs",
                           "serve a model folder on its own")
        return _plain_model(targets[0], device, serve_settings(ServeConfig(), serve_overrides))
    names = [run.root.resolve().name for run in runs]
    if len(set(names)) < len(names) or BASE_MODEL in names:
        raise RunError(f"served names must differ (and not be {BASE_MODEL!r}): {', '.join(names)}",
                       "rename a run folder")
    configs = [run.config() for run in runs]
    for run, config in zip(runs, configs):
        check_init_from(run, config)  # the weights its adapter applies on top of are those it trained on
    full = [name for name, config in zip(names, configs) if not uses_adapter(config.method)]
    if full and len(runs) > 1:
        raise RunError(f"{full[0]} is a full fine-tune, which cannot share a base with other runs",
                       "serve a full fine-tune on its own (one `tunesmith serve` per full run)")
    if full:
        config = configs[0]
        model = load_model_folder(_weights(runs[0], config), config.model, device)
        served = {names[0]: _served_run(names[0], runs[0], config, None, serve_overrides, embedder)}
        return _served(model, served, names[0], None, config.model)
    _check_one_base(names, configs)
    base, _ = load_base_model(configs[0].model, device)
    model = base
    for name, run in zip(names, runs):
        model = load_adapter(model, _weights(run, run.config()), name)
    model.eval()
    embedders = functools.cache(embedder) if embedder else None  # runs of one embedding model share it
    served = {name: _served_run(name, run, config, name, serve_overrides, embedders)
              for name, run, config in zip(names, runs, configs)}
    served[BASE_MODEL] = _served_run(BASE_MODEL, runs[0], configs[0], BASE_ADAPTER, serve_overrides, is_base=True)
    return _served(model, served, names[0], names[-1] if shadow else None, configs[0].model)


def _served(model, models: dict[str, ServedModel], primary: str, shadow: str | None,
            model_config: ModelConfig) -> Served:
    tokenizer = models[primary].tokenizer
    return Served(model=model, models=models, primary=primary, shadow=shadow,
                  stop_ids=frozenset(stop_token_ids(model, tokenizer)),
                  context_length=int(getattr(model.config, "max_position_embeddings", 0) or 1 << 20),
                  base_model=portable_name(model_config))


def serve_settings(section: ServeConfig, overrides: list[str]) -> ServeConfig:
    """A run's ``serve:`` section with ``--set serve.KEY=VALUE`` applied (any other key is a `ConfigError`)."""
    return override_section("serve", section, list(overrides)) if overrides else section


def sentence_embedder(name: str) -> Embedder:
    """The real embedder (`SentenceEmbedder`); without the rag extra, a `MissingExtraError` naming it."""
    require_extras("novelty per request", "rag")
    return SentenceEmbedder(name, key=EMBEDDING_SETTING)


def _plain_model(target: str, device, settings: ServeConfig) -> Served:
    model_config = ModelConfig(name=target)
    model = load_model_folder(model_folder(model_config), model_config, device)
    name = "default" if target == "default" else Path(target.rstrip("/")).name
    served = ServedModel(name=name, tokenizer=load_tokenizer(model_config), adapter=None, system_prompt=None,
                         task="generation", labels=None, data=None, run=None,
                         min_confidence=settings.min_confidence)
    return _served(model, {name: served}, name, None, model_config)


def _served_run(name: str, run: RunDir, config: RunConfig, adapter: str | None, serve_overrides: list[str],
                embedder: EmbedderFactory | None = None, is_base: bool = False) -> ServedModel:
    """``run`` served as ``name``; the base (``is_base``) takes the run's template and task but nothing evaluation
    measured of the tuned model."""
    summary = read_json(run.data_summary) or {}
    row_format = summary.get("format") or (config.data.format if config.data.format != "auto" else "messages")
    labels = summary.get("labels") or config.data.label_names
    reference = None if is_base else read_reference(run.reference)
    if reference is None and not is_base:
        why = ("evaluate.reference is off in its config" if not config.evaluate.reference
               else f"evaluate it again: tunesmith eval {run.root}")
        log.warning("%s: served without calibrated probabilities or novelty: %s has no reference.json (%s)", name,
                    run.root, why)
    return ServedModel(
        name=name, tokenizer=load_tokenizer(config.model), adapter=adapter, system_prompt=config.data.system_prompt,
        task=task_of(config.evaluate.task, row_format), labels=list(labels) if labels else None, data=config.data,
        run=None if is_base else run.root.resolve(), reference=reference,
        min_confidence=serve_settings(config.serve, serve_overrides).min_confidence,
        novelty=_novelty_index(name, run, config, reference, embedder) if embedder and reference else None,
    )


def _novelty_index(name: str, run: RunDir, config: RunConfig, reference: Reference,
                   embedder: EmbedderFactory) -> NoveltyIndex | None:
    """The run's novelty index; None, with one warning line saying why, when it cannot be had."""
    if reference.novelty is None:
        why = f"evaluation did not measure it ({reference.novelty_skipped or 'no reason recorded'})"
    else:
        try:
            return NoveltyIndex.load(run.novelty, embedder(config.monitor.embedding_model))
        except TunesmithError as error:  # the rag extra missing, no index, an index of another embedding model
            why = str(error)
    log.warning("%s: served without novelty: %s", name, why)
    return None


def _weights(run: RunDir, config: RunConfig) -> Path:
    """The run's best checkpoint; once its checkpoints are deleted (to free the disk), its export: ``adapter/``
    (adapter methods) or ``merged/`` (a full fine-tune), which hold the same weights."""
    if run.best.is_dir():
        return run.best_weights()
    exported = run.adapter if uses_adapter(config.method) else run.merged
    return exported if (exported / "config.json").is_file() or (exported / "adapter_config.json").is_file() \
        else run.best_weights()  # neither: the error says to train


def effective_base(model_config: ModelConfig) -> tuple:
    """What names the weights a run's adapter was trained on: the pretrained model (its folder and revision) and
    the `model.init_from` run whose merged weights were its base, if any (resolved)."""
    init_from = Path(model_config.init_from).resolve() if model_config.init_from else None
    return model_folder(model_config).resolve(), model_config.revision, init_from


def _describe_base(model_config: ModelConfig) -> str:
    name = portable_name(model_config)
    return name if model_config.init_from is None else f"the run {Path(model_config.init_from).name} ({name})"


def _check_one_base(names: list[str], configs: list[RunConfig]) -> None:
    """Adapters can share a base only if they were trained on the same weights (`effective_base`)."""
    first = effective_base(configs[0].model)
    for name, config in zip(names[1:], configs[1:]):
        if effective_base(config.model) != first:
            raise RunError(f"{name} was trained on {_describe_base(config.model)}, {names[0]} on "
                           f"{_describe_base(configs[0].model)}: adapters served together need one base",
                           "serve runs of different bases with separate `tunesmith serve` commands")
