"""Read, override, validate and save run configs; turn pydantic's errors into one-line `ConfigError`s."""

from __future__ import annotations

import difflib
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from tunesmith.atomic import write_atomic
from tunesmith.config.schema import RunConfig
from tunesmith.config.section import ConfigSection, RelativeToConfig, list_item_section, section_type
from tunesmith.errors import ConfigError
from tunesmith.text import is_unicode, shown_name

MAX_YAML_VALUES = 100_000
"""The most values (mappings, lists and scalars) a YAML file may stand for once its aliases are expanded: far
more than any config holds, while a "billion laughs" bomb of nine aliases a level is stopped at its sixth level."""
MAX_YAML_DEPTH = 100
"""The deepest nesting of a YAML file: PyYAML composes recursively, and Python's stack ends near 300 levels."""


class YamlLimitError(yaml.composer.ComposerError):
    """YAML that parses but is refused: an alias inside the node it names, more than `MAX_YAML_VALUES` values once
    aliases are expanded, or nesting deeper than `MAX_YAML_DEPTH`. A `yaml.YAMLError`, so every caller that
    handles bad YAML handles this too."""

    def __init__(self, problem: str, mark: yaml.Mark, hint: str | None = None):
        super().__init__(None, None, problem, mark)
        self.hint = hint


class _BoundedLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that checks while composing, before any object is built: a self-containing structure
    (`a: &x [*x]`) would make validation and `yaml.dump` recurse without end, and an alias bomb costs nothing to
    compose (each alias is the same node) but gigabytes once a caller walks it (the resolved config is dumped)."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._open_anchors: set[str] = set()
        self._values: dict[int, int] = {}  # id(node) -> values it stands for, aliases expanded
        self._depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open_anchors:
                raise YamlLimitError(f"the alias *{event.anchor} is inside the node &{event.anchor} that it names "
                                     "(a structure that contains itself)", event.start_mark,
                                     "write the values out instead of referring back to an enclosing anchor")
            return super().compose_node(parent, index)
        if self._depth >= MAX_YAML_DEPTH:
            raise YamlLimitError(f"nested deeper than {MAX_YAML_DEPTH} levels", event.start_mark)
        anchor = event.anchor
        if anchor is not None:
            self._open_anchors.add(anchor)
        self._depth += 1
        node = super().compose_node(parent, index)
        self._depth -= 1
        self._open_anchors.discard(anchor)
        children = (node.value if isinstance(node, yaml.SequenceNode) else
                    [part for pair in node.value for part in pair] if isinstance(node, yaml.MappingNode) else [])
        self._values[id(node)] = values = 1 + sum(self._values[id(child)] for child in children)
        if values > MAX_YAML_VALUES:
            raise YamlLimitError(f"this value stands for more than {MAX_YAML_VALUES} values once its aliases are "
                                 "expanded (an alias bomb?)", event.start_mark, "write the values out")
        return node


def read_yaml(text: str, name: str = "<string>") -> Any:
    """`yaml.safe_load` of user YAML, refusing what `YamlLimitError` names; ``name`` (the file) is what the
    positions in its errors name."""
    loader = _BoundedLoader(text)
    loader.name = name  # the marks in PyYAML's errors say "<unicode string>" otherwise
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Load a YAML run config, apply ``--set key=value`` overrides and validate it.

    Relative paths (the settings marked `RelativeToConfig`) are resolved against the config file's folder, so a
    config works from any cwd.
    """
    path = Path(path)
    if not is_unicode(str(path)):
        # The name enters the run folder's name, origin.json and reports, which hold only UTF-8: refused before
        # anything is made.
        raise ConfigError("", f"{shown_name(str(path))}: the file name is not valid UTF-8",
                          "rename the config file (tunesmith records its name in JSON and YAML, which are UTF-8)")
    if not path.is_file():
        raise ConfigError("", f"config file not found: {path}")
    try:
        raw = read_yaml(path.read_text(encoding="utf-8"), str(path)) or {}
    except YamlLimitError as exc:
        raise ConfigError("", f"{path}, line {exc.problem_mark.line + 1}: {exc.problem}", exc.hint) from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError("", f"{path} is not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(raw, dict):
        raise ConfigError("", f"{path} must hold a mapping of sections (model, data, train, ...)")
    raw = apply_overrides(raw, overrides or [])
    _resolve_paths(raw, RunConfig, path)
    return with_init_from(validate_config(raw))


INIT_FROM_HINT = "give the folder of a finished tunesmith run (runs/<name>)"


def with_init_from(config: RunConfig) -> RunConfig:
    """``config`` with its model settings taken from the `model.init_from` run (`ModelConfig.continuing`); a
    `ConfigError` naming model.init_from when that folder is no run that finished training. Its weights (intact,
    no circle of runs) are checked where they load (`tunesmith.models.init_from`)."""
    folder = config.model.init_from
    if folder is None:
        return config
    if config.method == "qlora":
        raise ConfigError("model.init_from", "qlora quantizes its base as the weights load, and a run's merged "
                          "weights are built in memory", "continue from a run with method: lora (or dora)")
    saved = Path(folder) / "config.yaml"
    if not Path(folder).is_dir():
        raise ConfigError("model.init_from", f"{folder} does not exist", INIT_FROM_HINT)
    if not saved.is_file():
        raise ConfigError("model.init_from", f"{folder} is not a tunesmith run folder (no config.yaml)", INIT_FROM_HINT)
    try:
        raw = read_yaml(saved.read_text(encoding="utf-8"), str(saved))
        if not isinstance(raw, dict):
            raise ValueError("it does not hold a mapping of sections")
        source = validate_config(raw)
    except (yaml.YAMLError, UnicodeDecodeError, ValueError, ConfigError) as exc:
        raise ConfigError("model.init_from", f"{saved} cannot be read: {' '.join(str(exc).split())}",
                          INIT_FROM_HINT) from None
    # RunDir.train_summary (run_dir sits above config): written when training ends. A folder that holds a config
    # of the user's own lacks it too, so the hint covers both.
    if not (Path(folder) / "train_summary.json").is_file():
        raise ConfigError("model.init_from", f"{folder} is not a finished tunesmith run (no train_summary.json)",
                          f"give a run that finished training; one that stopped goes on with `tunesmith train "
                          f"{saved} --resume --run-dir {folder}`")
    return config.model_copy(update={"model": config.model.continuing(source.model)})


def _resolve_paths(raw: Any, model: type[ConfigSection], config_path: Path) -> None:
    """Resolve, in place, the relative paths of ``raw`` (settings read for ``model``) against the config file's
    folder: every setting marked `RelativeToConfig`, in sections and in lists of sections. Values of the wrong shape
    are left for validation to name."""
    if not isinstance(raw, dict):
        return
    for name, field in model.model_fields.items():
        if name not in raw:
            continue
        marker = next((item for item in field.metadata if isinstance(item, RelativeToConfig)), None)
        if marker is not None:
            if not (isinstance(raw[name], str) and raw[name] in marker.names):
                raw[name] = _relative_to(config_path, raw[name])
        elif (section := section_type(field.annotation)) is not None:
            _resolve_paths(raw[name], section, config_path)
        elif (item := list_item_section(field.annotation)) is not None and isinstance(raw[name], list):
            for entry in raw[name]:
                _resolve_paths(entry, item, config_path)


def _relative_to(config_path: Path, value: Any) -> Any:
    """A relative path string resolved against the config file's folder; anything else as it is."""
    if isinstance(value, str) and value and not Path(value).is_absolute():
        return str((config_path.parent / value).resolve())
    return value


def validate_config(raw: dict[str, Any]) -> RunConfig:
    """Validate a plain dict into a `RunConfig`; the first problem becomes a `ConfigError` naming its key."""
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise _to_config_error(exc, raw) from None


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` strings; values are parsed as YAML (``1e-4``, ``true``, ``[a, b]``)."""
    raw = dict(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError("", f"override {item!r} is not of the form section.key=value")
        try:
            value = read_yaml(text, f"--set {key}") if text.strip() else None
        except YamlLimitError as exc:
            raise ConfigError(key, f"the --set value: {exc.problem}", exc.hint) from None
        except yaml.YAMLError:
            value = text
        node = raw
        parts = key.split(".")
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = {}
            elif not isinstance(child, dict):
                raise ConfigError(".".join(parts[: depth + 1]), "is not a section, so it has no sub-keys")
            node[part] = child = dict(child)
            node = child
        node[parts[-1]] = value
    return raw


def override_section(name: str, section: BaseModel, overrides: list[str]) -> BaseModel:
    """The config section ``name`` (its current values in ``section``) with ``--set name.key=value`` overrides
    applied and validated, for a command that reads that one section (`tunesmith monitor`): an override of any
    other key is an error naming it."""
    for item in overrides:
        key = item.partition("=")[0].strip()
        if not key.startswith(f"{name}."):
            raise ConfigError(key, f"is not a {name} setting", f"this command takes --set {name}.KEY=VALUE only")
    raw = apply_overrides({name: section.model_dump(mode="json")}, overrides)
    try:
        return type(section).model_validate(raw[name])
    except ValidationError as exc:
        raise _to_config_error(exc, raw, prefix=[name]) from None


def dump_config(config: RunConfig) -> str:
    """The resolved config (every default filled in) as YAML."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def save_config(config: RunConfig, path: str | Path) -> None:
    """Write `dump_config` to ``path`` (atomically: a run folder's config is never half written)."""
    write_atomic(path, dump_config(config))


def _to_config_error(exc: ValidationError, raw: dict[str, Any], prefix: list[str] | None = None) -> ConfigError:
    """``prefix``: where in a `RunConfig` the validated model sits (a section validated alone)."""
    error = exc.errors()[0]
    loc = [*(prefix or []), *(str(part) for part in error["loc"])]
    alternatives = []
    if _is_union_member(loc):
        # A value that fits no member of a union (`float | "auto"`): pydantic reports each member's error, with the
        # member's name appended to the location. Name the key, and the allowed words of the other members.
        alternatives = [other["ctx"]["expected"] for other in exc.errors()[1:]
                        if other["type"] == "literal_error" and other["loc"][:-1] == error["loc"][:-1]]
        loc = loc[:-1]
    key = ".".join(loc)
    kind = error["type"]
    if alternatives:
        return ConfigError(key, f"{error['msg'].lower()}, or {' or '.join(alternatives)} (got {error.get('input')!r})")
    if kind == "extra_forbidden":
        allowed = _fields_at(loc[:-1])
        nearest = difflib.get_close_matches(loc[-1], allowed, n=1, cutoff=0.5)
        hint = f"did you mean '{'.'.join(loc[:-1] + nearest[:1])}'?" if nearest else None
        return ConfigError(key, f"unknown key; valid keys here: {', '.join(allowed)}", hint)
    if kind == "literal_error":
        return ConfigError(key, f"{error['input']!r} is not allowed; allowed values: {error['ctx']['expected']}")
    if kind == "missing":
        return ConfigError(key, "is required")
    if kind == "value_error":
        return ConfigError(key or "data", str(error["ctx"].get("error", error["msg"])))
    return ConfigError(key, f"{error['msg'].lower()} (got {error.get('input')!r})")


def _is_union_member(loc: list[str]) -> bool:
    """Whether the last part of ``loc`` names a member of a union-typed setting rather than a key."""
    if len(loc) < 2 or loc[-2] not in _fields_at(loc[:-2]):
        return False
    model: type[BaseModel] = RunConfig
    for part in loc[:-2]:
        model = model.model_fields[part].annotation
    return typing.get_origin(model.model_fields[loc[-2]].annotation) in (typing.Union, types.UnionType)


def _fields_at(loc: list[str]) -> list[str]:
    model: type[BaseModel] = RunConfig
    for part in loc:
        field = model.model_fields.get(part)
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)
