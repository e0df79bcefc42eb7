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
allow, lo not below hi, a log scale from 0 or with a step, a grid over `MAX_GRID_POINTS`) is a `ConfigError`
naming ``sweep.params.<key>`` before any trial starts: every choice and both ends of every range are validated as
the run config they would make, and every rule Optuna checks when it samples is checked here first (Optuna's own
check fails inside a trial, with a traceback). Sampling itself is Optuna's.
"""

from __future__ import annotations

import difflib
import itertools
import math
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from tunesmith.config.loading import validate_config
from tunesmith.config.schema import RunConfig
from tunesmith.config.vocabulary import ALWAYS_REPORTED, MINIMIZED, TASK_METRICS
from tunesmith.errors import ConfigError
from tunesmith.text import preview

KINDS = ("choices", "uniform", "log_uniform", "int", "multiple_of_r")
NOT_SEARCHABLE = ("sweep", "output")
"""Sections a trial cannot vary: the search itself, and where runs are written."""
MAX_SPACE_VALUES = 10_000
"""The most values (numbers, strings, list items) ``sweep.params`` may hold, each alias counted as often as it is
used: a kilobyte of YAML aliases can stand for billions of values, which checking each choice, writing trials'
configs and the report would expand."""
MAX_GRID_POINTS = 100_000
"""The most settings a grid may hold: a grid is listed point by point (to find the points not tried yet), and a
wider one (an int range 0..10**9 with step 1) would take gigabytes and more trials than anyone runs."""


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

    @property
    def size(self) -> int | None:
        """How many values the parameter can take, counted without listing them; None for a continuous range."""
        if self.kind in ("choices", "multiple_of_r"):
            return len(self.choices)
        if self.kind == "int":
            return (int(self.high) - int(self.low)) // int(self.step or 1) + 1
        return None

    def grid(self) -> list | None:
        """Every value the parameter can take, or None for a continuous range (which no grid covers). Called only
        on spaces `space_size` found under `MAX_GRID_POINTS`."""
        if self.kind in ("choices", "multiple_of_r"):
            return list(self.choices)
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        return None


def space_size(params: list[Param]) -> int | None:
    """How many distinct settings the space holds (the product of the parameters' sizes), or None when a parameter
    is continuous."""
    sizes = [param.size for param in params]
    return None if any(size is None for size in sizes) else math.prod(sizes)


def every_setting(params: list[Param]) -> list[tuple]:
    """Every setting of a finite space of at most `MAX_GRID_POINTS`, as tuples in the order of ``params``."""
    return list(itertools.product(*(param.grid() for param in params)))


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
    if _count_values(sweep.params, MAX_SPACE_VALUES) > MAX_SPACE_VALUES:
        raise ConfigError("sweep.params", f"holds more than {MAX_SPACE_VALUES:,} values (counting each use of a "
                          "YAML alias)", "list the choices themselves; a search space needs few values")
    params = [_param(key, spec) for key, spec in sweep.params.items()]
    base = config.model_dump(mode="json", exclude={"sweep"})  # the space itself is not a trial's setting
    for param in params:
        _check_values(base, param, params)
    if sweep.sampler == "grid":
        continuous = [param.key for param in params if param.size is None]
        if continuous or not params:
            raise ConfigError("sweep.sampler", "grid needs every parameter to be a list of choices or stepped "
                              f"integers{'; continuous: ' + ', '.join(continuous) if continuous else ''}",
                              "give choices, or use sampler: tpe or random")
        size = space_size(params)
        if size > MAX_GRID_POINTS:
            widest = max(params, key=lambda param: param.size)
            raise ConfigError(f"sweep.params.{widest.key}", f"the grid holds {size:,} settings ({widest.key}: "
                              f"{widest.size:,} values), over the limit of {MAX_GRID_POINTS:,}",
                              "give a larger step or fewer choices, or use sampler: tpe or random")
    return params


def _count_values(value: Any, limit: int) -> int:
    """The values in ``value`` (containers and what they hold, every reference counted), counted up to just past
    ``limit`` and no further."""
    count, stack = 0, [value]
    while stack and count <= limit:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return count


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
        raise ConfigError(where, f"must be a list of choices or a distribution, got {preview(spec)}",
                          f"e.g. [8, 16, 32], or {{{', '.join(f'{kind}: ...' for kind in KINDS)}}}")
    kinds = [kind for kind in KINDS if kind in spec]
    extra = sorted(set(spec) - set(KINDS) - {"step", "log"})
    if len(kinds) != 1 or extra:
        raise ConfigError(where, f"give exactly one of {', '.join(KINDS)} (and step/log for int); got "
                          f"{preview(', '.join(map(str, spec)) or 'nothing')}")
    kind = kinds[0]
    value = spec[kind]
    if "log" in spec and (kind not in ("int", "uniform") or not isinstance(spec["log"], bool)):
        raise ConfigError(where, "log is true or false, for int and uniform ranges (log_uniform is log already)")
    if "step" in spec and kind != "int":
        raise ConfigError(where, "step is for int ranges, a whole number of 1 or more")
    if kind in ("choices", "multiple_of_r"):
        if not isinstance(value, list) or not value:
            raise ConfigError(where, "the list of choices is empty" if value == [] else "choices must be a list")
        if kind == "multiple_of_r" and key != "lora.alpha":
            raise ConfigError(where, "multiple_of_r sets lora.alpha from lora.r; other keys take choices or ranges")
        if kind == "multiple_of_r" and not all(isinstance(m, (int, float)) and m > 0 for m in value):
            raise ConfigError(where, "multiple_of_r takes positive numbers")
        repeated = next((choice for index, choice in enumerate(value) if choice in value[:index]), None)
        if repeated is not None:  # one setting listed twice would be tried twice
            raise ConfigError(where, f"{preview(repeated)} is listed twice", "list each choice once")
        return Param(key, kind, choices=tuple(value))
    if not (isinstance(value, list) and len(value) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)):
        raise ConfigError(where, f"{kind} takes [low, high], two finite numbers, got {preview(value)}")
    low, high = value
    if not low < high:
        raise ConfigError(where, f"{kind}: low ({low}) must be below high ({high})")
    log = kind == "log_uniform" or spec.get("log", False)
    if log and low <= 0:
        raise ConfigError(where, f"a log scale needs a positive low end, got {low}", "start the range above 0")
    step = spec.get("step")
    if step is not None and (not isinstance(step, int) or isinstance(step, bool) or step < 1):
        raise ConfigError(where, "step is for int ranges, a whole number of 1 or more")
    if log and step not in (None, 1):
        raise ConfigError(where, f"a log scale takes no step (got step {step}): Optuna spreads it over orders of "
                          "magnitude", "drop log, or drop step")
    if kind == "int" and not all(isinstance(v, int) for v in value):
        raise ConfigError(where, f"int takes whole numbers, got {preview(value)}")
    return Param(key, "float" if kind != "int" else "int", low=low, high=high, step=step, log=log)


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
        # The ends of an r range, not every r in it (a range may hold millions).
        rs = (r_param.choices or [r_param.low, r_param.high]) if r_param else [base["lora"]["r"]]
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
            raise ConfigError(f"sweep.params.{param.key}", f"{preview(value)} is not a valid {param.key}: "
                              f"{error.problem}") from None


def _annotation_of(key: str):
    model: type[BaseModel] = RunConfig
    parts = key.split(".")
    for part in parts[:-1]:
        model = _section_type(model.model_fields[part].annotation)
    return model.model_fields[parts[-1]].annotation
