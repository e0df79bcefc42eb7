"""What a run's results say, read from its eval.json: the comparison table of base, tuned and baselines, and the
verdict against the best baseline. Pure functions of the dict, below every stage that shows results (the report,
the model card of an export, the sweep report, the web UI, the terminal), so none of them imports the evaluation
stage that wrote it. Beside it, the run's reference (`tunesmith.results.reference`): what healthy traffic looks like
for the run, written by evaluation and read by the server and the monitor."""

from tunesmith.results.comparison import (
    baseline_verdict,
    best_baseline,
    comparison_caption,
    comparison_table,
    format_comparison,
)
from tunesmith.results.reference import Reference, read_reference, write_reference

__all__ = ["baseline_verdict", "best_baseline", "comparison_caption", "comparison_table", "format_comparison",
           "Reference", "read_reference", "write_reference"]
