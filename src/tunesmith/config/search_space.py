"""The search space of `tunesmith sweep`: ``sweep.params`` read into `Param`s, checked when the config loads.

Each key is a config key (``train.learning_rate``, ``lora.r``); each value a distribution:

- a list: one of these values (``[8, 16, 32]``);
- ``{choices: [...]}``: the same;
- ``{uniform: [lo, hi]}`` / ``{log_uniform: [lo, hi]}``: a float in the range (log: spread over orders of
  magnitude, for learning rates);
- ``{int: [lo, hi], step: n}``: a whole number, lo, lo+n, ... up to hi (``log: true`` for a log scale);
- ``{multiple_of_r: [1, 2, 4]}``, for ``lora.alpha`` only: alpha is r times one of these (LoRA's scale is
  alpha / r, so the multiple is what matters).

A bad space (an unknown key, a float range for an integer setting, an empty list, a value the setting does not
allow, lo not below hi) is a `ConfigError` naming ``sweep.params.<key>`` before any trial starts: every choice
and both ends of every range are validated as the run config they would make. Sampling itself is Optuna's.
"""

from __future__ import annotations

import difflib
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from tunesmith.config.loading import validate_config
from tunesmith.config.schema import RunConfig
from tunesmith.config.vocabulary import ALWAYS_REPORTED, MINIMIZED, TASK_METRICS
from tunesmith.errors import ConfigError

KINDS = ("choices", "uniform", "log_uniform", "int", "multiple_of_r")
NOT_SEARCHABLE = ("sweep", "output")
"""Sections a trial cannot vary: the search itself, and where runs are written."""


@dataclass(frozen=True)
class Param:
    key: str
    kind: str
    """One of `KINDS` (a plain list is ``choices``)."""
    choices: tuple = ()
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False

    @property
    def label(self) -> str:
        """The column or axis title of the sampled value: a ``multiple_of_r`` value is alpha / r, not alpha."""
        return f"{self.key} / r" if self.kind == "multiple_of_r" else self.key

    def grid(self) -> list | None:
        """Every value the grid sampler visits, or None for a continuous range (which no grid covers)."""
        if self.kind in ("choices", "multiple_of_r"):
            return list(self.choices)
        if self.kind == "int":
            step = int(self.step or 1)
            return list(range(int(self.low), int(self.high) + 1, step))
        return None


def metric_direction(metric: str, direction: str | None) -> str:
    """`sweep.direction`, or what the metric implies: losses and errors are minimized, scores maximized."""
    if direction is not None:
        return direction
    return "minimize" if metric.removeprefix("val_") in MINIMIZED else "maximize"


def check_metric(metric: str, task: str | None = None) -> None:
    """`sweep.metric` must be ``val_loss`` or one of the task's metrics (of any task while the task is unknown)."""
    name = metric.removeprefix("val_")
    known = TASK_METRICS[task] if task else tuple(m for names in TASK_METRICS.values() for m in names)
    if name in ALWAYS_REPORTED[:1] or name in known:
        return
    where = f"a {task} run's" if task else "the"
    raise ConfigError("sweep.metric", f"{metric!r} is not one of {where} validation metrics",
                      f"use val_loss or one of: {', '.join(known)}")


def parse_space(config: RunConfig) -> list[Param]:
    """`sweep.params` of ``config`` as `Param`s, every choice and range end validated (see the module docstring)."""
    sweep = config.sweep
    if sweep is None:
        return []
    check_metric(sweep.metric)
    params = [_param(key, spec) for key, spec in sweep.params.items()]
    base = config.model_dump(mode="json")
    for param in params:
        _check_values(base, param, params)
    if sweep.sampler == "grid":
        continuous = [param.key for param in params if param.grid() is None]
        if continuous or not params:
            raise ConfigError("sweep.sampler", "grid needs every parameter to be a list of choices or stepped "
                              f"integers{'; continuous: ' + ', '.join(continuous) if continuous else ''}",
                              "give choices, or use sampler: tpe or random")
    return params


def apply_params(raw: dict, values: dict[str, Any]) -> dict:
    """``raw`` (a config as a dict) with each dotted key set to its value (``lora.alpha`` resolved for
    ``multiple_of_r``, which `resolve` does first)."""
    raw = {section: dict(value) if isinstance(value, dict) else value for section, value in raw.items()}
    for key, value in values.items():
        section, _, name = key.rpartition(".")
        node = raw
        for part in section.split("."):
            node[part] = dict(node.get(part) or {})
            node = node[part]
        node[name] = value
    return raw


def resolve(values: dict[str, Any], params: list[Param], raw: dict) -> dict[str, Any]:
    """The config values of sampled ``values``: a ``multiple_of_r`` multiple becomes alpha = r x multiple."""
    resolved = dict(values)
    for param in params:
        if param.kind == "multiple_of_r" and param.key in values:
            r = values.get("lora.r", (raw.get("lora") or {}).get("r"))
            resolved[param.key] = float(r) * float(values[param.key])
    return resolved


def _param(key: str, spec: Any) -> Param:
    where = f"sweep.params.{key}"
    _check_key(key)
    if isinstance(spec, list):
        spec = {"choices": spec}
    if not isinstance(spec, dict):
        raise ConfigError(where, f"must be a list of choices or a distribution, got {spec!r}",
                          f"e.g. [8, 16, 32], or {{{', '.join(f'{kind}: ...' for kind in KINDS)}}}")
    kinds = [kind for kind in KINDS if kind in spec]
    extra = sorted(set(spec) - set(KINDS) - {"step", "log"})
    if len(kinds) != 1 or extra:
        raise ConfigError(where, f"give exactly one of {', '.join(KINDS)} (and step/log for int); got "
                          f"{', '.join(map(str, spec)) or 'nothing'}")
    kind = kinds[0]
    value = spec[kind]
    if kind in ("choices", "multiple_of_r"):
        if not isinstance(value, list) or not value:
            raise ConfigError(where, "the list of choices is empty" if value == [] else "choices must be a list")
        if kind == "multiple_of_r" and key != "lora.alpha":
            raise ConfigError(where, "multiple_of_r sets lora.alpha from lora.r; other keys take choices or ranges")
        if kind == "multiple_of_r" and not all(isinstance(m, (int, float)) and m > 0 for m in value):
            raise ConfigError(where, "multiple_of_r takes positive numbers")
        return Param(key, kind, choices=tuple(value))
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value)):
        raise ConfigError(where, f"{kind} takes [low, high], got {value!r}")
    low, high = value
    if not low < high:
        raise ConfigError(where, f"{kind}: low ({low}) must be below high ({high})")
    if kind == "log_uniform" and low <= 0:
        raise ConfigError(where, f"log_uniform needs a positive low end, got {low}")
    step = spec.get("step")
    if step is not None and (kind != "int" or not isinstance(step, int) or step < 1):
        raise ConfigError(where, "step is for int ranges, a whole number of 1 or more")
    if kind == "int" and not all(isinstance(v, int) for v in value):
        raise ConfigError(where, f"int takes whole numbers, got {value!r}")
    return Param(key, "float" if kind != "int" else "int", low=low, high=high, step=step,
                 log=kind == "log_uniform" or bool(spec.get("log")))


def _check_key(key: str) -> None:
    """``key`` names a setting (a leaf of the config), outside `NOT_SEARCHABLE`."""
    where = f"sweep.params.{key}"
    parts = key.split(".")
    model: type[BaseModel] = RunConfig
    for depth, part in enumerate(parts):
        fields = model.model_fields
        if part not in fields:
            nearest = difflib.get_close_matches(part, list(fields), n=1, cutoff=0.5)
            prefix = ".".join(parts[:depth])
            hint = f"did you mean '{'.'.join([*parts[:depth], nearest[0]])}'?" if nearest else None
            raise ConfigError(where, f"{key!r} is not a config key; keys{' of ' + prefix if prefix else ''}: "
                              f"{', '.join(fields)}", hint)
        section = _section_type(fields[part].annotation)
        if depth == len(parts) - 1:
            if section is not None:
                raise ConfigError(where, f"{key} is a section; search one of its keys: "
                                  f"{', '.join(section.model_fields)}")
        elif section is None:
            raise ConfigError(where, f"{'.'.join(parts[:depth + 1])} is a setting, not a section")
        else:
            model = section
    if parts[0] in NOT_SEARCHABLE:
        raise ConfigError(where, f"the {parts[0]} section cannot vary between trials")


def _section_type(annotation) -> type[BaseModel] | None:
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _check_values(base: dict, param: Param, params: list[Param]) -> None:
    """Every choice and both ends of a range make a valid config (the setting's own type and bounds)."""
    if param.kind == "multiple_of_r":
        r_param = next((p for p in params if p.key == "lora.r"), None)
        rs = (r_param.grid() or [r_param.low, r_param.high]) if r_param else [base["lora"]["r"]]
        values = [float(r) * float(m) for r in rs for m in param.choices]
    elif param.kind == "choices":
        values = list(param.choices)
    else:
        values = [param.low, param.high]
    annotation = _annotation_of(param.key)
    whole = [t for t in (annotation, *typing.get_args(annotation)) if t is int]
    if param.kind == "float" and whole and float not in typing.get_args(annotation) and annotation is not float:
        raise ConfigError(f"sweep.params.{param.key}", f"{param.key} takes whole numbers; a float range does not "
                          "fit it", "use {int: [low, high], step: n} or a list of choices")
    for value in values:
        try:
            validate_config(apply_params(base, {param.key: value}))
        except ConfigError as error:
            raise ConfigError(f"sweep.params.{param.key}", f"{value!r} is not a valid {param.key}: "
                              f"{error.problem}") from None


def _annotation_of(key: str):
    model: type[BaseModel] = RunConfig
    parts = key.split(".")
    for part in parts[:-1]:
        model = _section_type(model.model_fields[part].annotation)
    return model.model_fields[parts[-1]].annotation
