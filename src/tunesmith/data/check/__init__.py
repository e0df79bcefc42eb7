"""The data check (`tunesmith data check`, and the first stage of `tunesmith run`): counts and token lengths per
split (`data_report`), the finders of problems in rows (`quality`, with `near_duplicates`), the chat template's round
trip (`template`), and a copy of a file without the rows it flags (`clean`, `tunesmith data clean`)."""

from tunesmith.data.check.clean import clean_file, run_clean
from tunesmith.data.check.data_report import (
    CheckSettings,
    DataReport,
    ExamplesToCheck,
    check_data,
    check_examples,
    check_file,
    check_run_data,
    run_check,
)

__all__ = ["CheckSettings", "DataReport", "ExamplesToCheck", "check_data", "check_examples", "check_file",
           "check_run_data", "clean_file", "run_check", "run_clean"]
