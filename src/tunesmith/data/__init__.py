"""Stage: data. Read files (`read_rows`), turn rows into conversations (`detect_format`, `to_example`), split them
(`load_splits`), tokenize them with assistant-only labels, and check them (`check_data`)."""

from tunesmith.data.check import DataReport, check_data, check_file, run_check
from tunesmith.data.example import Example, Splits
from tunesmith.data.formats import detect_format, to_example
from tunesmith.data.readers import read_rows
from tunesmith.data.splits import load_splits
from tunesmith.data.tokenize import render_prompt, tokenize_example, tokenize_examples

__all__ = [
    "DataReport", "Example", "Splits", "check_data", "check_file", "detect_format", "load_splits", "read_rows",
    "render_prompt", "run_check", "to_example", "tokenize_example", "tokenize_examples",
]
