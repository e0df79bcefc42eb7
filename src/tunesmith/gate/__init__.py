"""Stage: gate. Whether a run may replace the model in service: paired bootstrap intervals (and McNemar's test)
of its metric against the base model, the best classic baseline and the run in service; calibration; output
validity; how much of the base's general ability it keeps; latency and export size. Writes gate.json
(`tunesmith.results.gate` reads it)."""

from tunesmith.gate.runner import format_gate, run_gate
from tunesmith.gate.stats import mcnemar, metric_statistics, paired_bootstrap

__all__ = ["format_gate", "mcnemar", "metric_statistics", "paired_bootstrap", "run_gate"]
