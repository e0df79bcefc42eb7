"""What may change in a run's config after the run has started, and how a change is named.

A run folder's `config.yaml` is the truth about what a run is. Two rules follow:

- **Resume** continues the run exactly as it was configured. A setting that only says how long to go on, what
  to record along the way, or how this machine computes it may change: it is applied and written to the run's
  `config.yaml`. Any other difference is an error naming each changed key with its old and new value.
- **A command on a run folder** (`eval`, `compare`, `export`, `report`, `chat`, `generate`, `review create`) may
  change the settings of the command at hand (evaluation and generation, review, and the attention kernel of the
  machine it runs on), never those that define the trained model or its data: an export's model card must
  describe the model it ships.

Which settings are which is said on each field of the schema, by its marker (`Resumable`, `RunFolderSetting` in
`tunesmith.config.section`); `RESUMABLE` and `RUN_FOLDER_SETTINGS` are read from those markers.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tunesmith.config.schema import RunConfig
from tunesmith.config.section import ConfigSection, Resumable, RunFolderSetting, section_type
from tunesmith.errors import ConfigError


def _marked(marker: type[Resumable], model: type[ConfigSection] = RunConfig, prefix: str = "") -> tuple[str, ...]:
    """The keys whose field carries ``marker`` (or a marker that implies it): a marked section as ``name.`` (every key
    in it), a marked setting by its key; an unmarked section is searched for marked keys."""
    found: list[str] = []
    for name, field in model.model_fields.items():
        section = section_type(field.annotation)
        if any(isinstance(item, marker) for item in field.metadata):
            found.append(f"{prefix}{name}." if section else f"{prefix}{name}")
        elif section is not None:
            found += _marked(marker, section, f"{prefix}{name}.")
    return tuple(found)


RESUMABLE = _marked(Resumable)
"""Keys (or sections, ending in a dot) a resume may change: the fields marked `Resumable` in the schema."""
RUN_FOLDER_SETTINGS = _marked(RunFolderSetting)
"""Keys (or sections) `--set` may change on a run folder: the fields marked `RunFolderSetting`."""


def flat(config: RunConfig) -> dict[str, Any]:
    """Every setting as ``{dotted key: value}``."""
    def walk(prefix: str, value: Any) -> dict[str, Any]:
        if isinstance(value, dict):
            return {key: item for name, child in value.items() for key, item in walk(f"{prefix}{name}.", child).items()}
        return {prefix[:-1]: value}

    return walk("", config.model_dump(mode="json"))


def changes(old: RunConfig, new: RunConfig) -> list[tuple[str, Any, Any]]:
    """``(key, old value, new value)`` of every setting that differs, in config order."""
    before, after = flat(old), flat(new)
    return [(key, before.get(key), after.get(key)) for key in dict.fromkeys([*before, *after])
            if before.get(key) != after.get(key)]


def describe(found: list[tuple[str, Any, Any]]) -> str:
    return "; ".join(f"{key} {json.dumps(old)} → {json.dumps(new)}" for key, old, new in found)


def _matches(key: str, allowed: tuple[str, ...]) -> bool:
    """Whether ``key`` is one of ``allowed``, lies in one of its sections, or is an entry of one of its mappings."""
    return any(key.startswith(rule) if rule.endswith(".") else key == rule or key.startswith(f"{rule}.")
               for rule in allowed)


def resumable(key: str) -> bool:
    """Whether a resume may change the dotted ``key`` (`Resumable` in the schema)."""
    return _matches(key, RESUMABLE)


def run_folder_setting(key: str) -> bool:
    """Whether `--set` may change the dotted ``key`` on a run folder (`RunFolderSetting` in the schema)."""
    return _matches(key, RUN_FOLDER_SETTINGS)


def _listed(rules: tuple[str, ...]) -> str:
    """``evaluate.*, serve.*, review.* and model.attention``: the sections, then the keys."""
    names = [f"{rule}*" for rule in rules if rule.endswith(".")] + [rule for rule in rules if not rule.endswith(".")]
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


def resumed_config(saved: RunConfig, requested: RunConfig, run_name: str) -> tuple[RunConfig, list]:
    """The config a resume runs with, and the resumable changes it applies (see the module docstring)."""
    found = changes(saved, requested)
    fixed = [change for change in found if not resumable(change[0])]
    if fixed:
        raise ConfigError(
            "", f"resuming {run_name} with changed settings: {describe(fixed)}",
            "a resume continues the run as it was configured (its config.yaml); only how long it trains and what it "
            "records may change. Resume with the run's settings, or start a new run without --resume",
        )
    return requested, found


def run_folder_config(saved: RunConfig, requested: RunConfig) -> RunConfig:
    """``requested`` when it changes only settings of the command at hand, else a `ConfigError` naming the key."""
    fixed = [change for change in changes(saved, requested) if not run_folder_setting(change[0])]
    if fixed:
        key, old, _ = fixed[0]
        raise ConfigError(key, f"is fixed in a trained run (it was trained with {json.dumps(old)})",
                          f"on a run folder, --set changes {_listed(RUN_FOLDER_SETTINGS)} only; start a new run to "
                          "change the rest")
    return requested


def fingerprint(config: RunConfig) -> str:
    """sha256 of every setting that defines a run (what a resume may not change): two configs with the same
    fingerprint train the same model."""
    fixed = {key: value for key, value in flat(config).items() if not resumable(key)}
    return hashlib.sha256(json.dumps(fixed, sort_keys=True).encode()).hexdigest()
