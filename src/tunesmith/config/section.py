"""The base of every config section."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ConfigSection(BaseModel):
    """A section of the run config: unknown keys are errors, assignments are validated, and each field's docstring
    is its documentation (the manual's config reference, docs/reference/config.md, is generated from them)."""

    # allow_inf_nan=False: `train.epochs: inf` and the like are errors naming the key, not a crash after the model
    # has loaded.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_attribute_docstrings=True,
                              allow_inf_nan=False)
