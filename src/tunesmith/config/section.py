"""The base of every config section, and the markers a field carries: which settings may change after a run
started, and which are paths relative to the config file."""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict


class ConfigSection(BaseModel):
    """A section of the run config: unknown keys are errors, assignments are validated, and each field's docstring
    is its documentation (the manual's config reference, docs/reference/config.md, is generated from them)."""

    # allow_inf_nan=False: `train.epochs: inf` and the like are errors naming the key, not a crash after the model
    # has loaded.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_attribute_docstrings=True,
                              allow_inf_nan=False)


@dataclass(frozen=True)
class Resumable:
    """Marks a setting that a resume may change (in its field's type: ``Annotated[int, Resumable()]``): it says how
    long the run goes on, what it records, or how the machine computes it, not what the run is. On a section field
    it marks every key of the section. A setting without a marker defines the run: a resume that changes it is an
    error, and the run's fingerprint covers it (`tunesmith.config.changes`)."""


@dataclass(frozen=True)
class RunFolderSetting(Resumable):
    """Marks a setting of the commands on a run folder (`eval`, `export`, `report`, `chat`, `review create`, ...):
    `--set` may change it there, and so may a resume. The settings that define the trained model or its data are
    never one: an export's model card must describe the model it ships."""


@dataclass(frozen=True)
class RelativeToConfig:
    """Marks a path setting whose relative value is resolved against the config file's folder when the config loads
    (`tunesmith.config.load_config`), so that a config works from any working directory."""

    names: tuple[str, ...] = ()
    """Values that name something rather than a path (`default`, a built-in chat template): kept as they are."""


def section_type(annotation: Any) -> type[ConfigSection] | None:
    """The section of a field typed ``ConfigSection`` or ``ConfigSection | None``; None for a setting."""
    for candidate in (annotation, *typing.get_args(annotation)):
        # `list[ConfigSection]` is no section, though before Python 3.11 it passes for a type.
        is_class = typing.get_origin(candidate) is None and isinstance(candidate, type)
        if is_class and issubclass(candidate, ConfigSection):
            return candidate
    return None


def list_item_section(annotation: Any) -> type[ConfigSection] | None:
    """The section of the items of a field typed ``list[ConfigSection]`` or ``list[ConfigSection] | None``; None
    for anything else."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if typing.get_origin(candidate) is list:
            return section_type(typing.get_args(candidate)[0])
    return None
