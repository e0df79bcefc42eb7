"""Experiment trackers (`train.report_to`): MLflow, Weights & Biases and Trackio, below every stage that logs
to them (training, evaluation, the gate, the pipeline's end)."""

from tunesmith.tracking.trackers import (
    Trackers,
    eval_numbers,
    gate_numbers,
    log_outputs,
    log_stage,
    numbers,
    require_trackers,
    tracker_names,
)

__all__ = ["Trackers", "eval_numbers", "gate_numbers", "log_outputs", "log_stage", "numbers", "require_trackers",
           "tracker_names"]
