"""General ability kept: the tuned model against its base on general instruction prompts shipped with tunesmith
(interface; the measurement lands with issue 22's general-ability work)."""

from __future__ import annotations

from tunesmith.config.schema import RunConfig
from tunesmith.run_dir import RunDir


def general_ability(config: RunConfig, run: RunDir) -> dict:
    """The general-ability measurement of gate.json's ``general_ability`` check (see /work/tools/common22.md)."""
    raise NotImplementedError("general ability is not measured yet")
