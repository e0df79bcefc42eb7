"""`tunesmith compare`: a run's comparison table (`tunesmith.results`), evaluating what eval.json lacks first; or a
previous run's model against this one on this run's test split."""

from __future__ import annotations

from tunesmith.config.schema import RunConfig
from tunesmith.data.run_inputs import RunInputs
from tunesmith.evaluate.runner import evaluate_against, evaluate_run
from tunesmith.json_files import read_json
from tunesmith.results import format_comparison
from tunesmith.run_dir import RunDir


def compare_run(config: RunConfig, run: RunDir, against: RunDir | None = None) -> str:
    """The comparison table of a run: base vs tuned, evaluating it first when eval.json lacks the base model; or,
    ``against`` a previous run, that run's model vs this one on this run's test split (`evaluate_against`). The
    run's data is read only when something is evaluated."""
    inputs = RunInputs(config)
    if against is not None:
        return format_comparison(evaluate_against(config, run, against, inputs))
    result = read_json(run.eval_json)
    if result is None or result.get("base") is None:
        result = evaluate_run(config, run, inputs, include_base=True)
    return format_comparison(result)
