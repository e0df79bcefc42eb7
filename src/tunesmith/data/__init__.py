"""Stage: data. Read files into rows (`readers`), turn rows into conversations (`formats`, with the format and
labels from `fields`), split them (`load_run_splits`), tokenize them with assistant-only labels (`tokenize`,
cached by `cache`, streamed by `stream`), and check them (the `check` subpackage: `tunesmith data check`/`clean`,
and the pipeline's data stage `check_run_data`). What a run's stages share is here too: its splits and the `Task`
they are scored on (`RunInputs`)."""

from tunesmith.data.check import DataReport, check_data, check_file, check_run_data, run_check
from tunesmith.data.example import Example, Splits
from tunesmith.data.fields import detect_format, infer_format_and_labels
from tunesmith.data.formats import to_example
from tunesmith.data.readers import read_rows
from tunesmith.data.run_inputs import RunInputs
from tunesmith.data.splits import load_run_splits, load_splits
from tunesmith.data.task import Task
from tunesmith.data.tokenize import render_prompt, tokenize_example, tokenize_examples

__all__ = [
    "DataReport", "Example", "RunInputs", "Splits", "Task", "check_data", "check_file", "check_run_data",
    "detect_format", "infer_format_and_labels", "load_run_splits", "load_splits", "read_rows", "render_prompt",
    "run_check", "to_example", "tokenize_example", "tokenize_examples",
]
