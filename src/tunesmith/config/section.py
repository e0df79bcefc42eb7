"""The base of every config section: unknown keys are errors, assignments are validated, and the attribute
docstrings are the documentation (the README reference is generated from them). In its own module so that
sections kept outside schema.py (`review_section`) share it without importing schema.py, which imports them."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    # allow_inf_nan=False: `train.epochs: inf` and the like are errors naming the key, not a crash after the model
    # has loaded.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_attribute_docstrings=True,
                              allow_inf_nan=False)
