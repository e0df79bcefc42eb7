"""The report's first section, the release gate (`tunesmith gate`): whether the run may replace the model in
service, each check with its numbers, intervals, rows and reason, and how much of the base's general ability the
tuned model keeps. Read from gate.json through `tunesmith.results.gate`, which the web UI shares."""

from __future__ import annotations

from tunesmith.config import RunConfig
from tunesmith.document import Section, Text
from tunesmith.results.gate import gate_blocks, gate_state
from tunesmith.run_dir import RunDir

TITLE = "Gate"


def gate_section(config: RunConfig, run: RunDir) -> Section | None:
    """The section; None for a run that was never gated and has no `gate:` section (nothing asked for a gate)."""
    state, gate, line = gate_state(run.root)
    name = run.root.resolve().name
    if state == "unreadable":
        return Section(TITLE, [Text(f"The gate's result cannot be read: {line}")])
    if gate is None:
        if config.gate is None:
            return None
        return Section(TITLE, [Text(f"Not gated yet: run `tunesmith gate {name}` (the config has a gate: section).")])
    return Section(TITLE, gate_blocks(gate, name, stale=state == "stale"))
