"""Lists kept by hand that must change together with something defined elsewhere, each checked against it: a new
field, file, state, verdict or command group that one of them misses fails here, naming the list to extend.

Lists guarded beside their own module are not repeated here (the vocabularies in tests/config/test_vocabulary.py,
the row-format converters in tests/data/test_formats.py, the chat templates in tests/models/test_templates.py, the
GGUF tensor types in tests/export/test_gguf.py, the CLI's handlers in tests/test_cli.py, the Optuna state words in
tests/test_sweep_folder.py, what a resume may change in tests/config/test_changes.py).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import get_args

from optuna.trial import TrialState

from tunesmith.config.changes import resumable
from tunesmith.config.monitor_section import MonitorConfig
from tunesmith.config.schema import DataConfig, DistributedConfig, EvaluateConfig, RunConfig
from tunesmith.config.section import section_type
from tunesmith.config.vocabulary import ALWAYS_REPORTED, TASK_METRICS, GgufQuant, TaskName
from tunesmith.run_dir import RunDir

SOURCE = Path(__file__).resolve().parents[1] / "src" / "tunesmith"


def test_run_folder_file_names_used_elsewhere_are_run_dir_s():
    from tunesmith.pipeline import UNSTARTED_FILES
    from tunesmith.ui.app import RUN_FILES

    run = RunDir("run")
    names = {value.fget(run).name for value in vars(RunDir).values() if isinstance(value, property)}
    assert set(RUN_FILES) - names == set() and set(UNSTARTED_FILES) - names == set()


def test_the_tokenization_cache_key_holds_every_data_setting_that_defines_the_run():
    """A data setting a resume may not change shapes the rows or their tokens, so it enters the cache key; one that
    may change (`cache`, `num_proc`, `check`) does not."""
    from tunesmith.data.cache import ROW_SHAPING_FIELDS

    keys = {name: f"data.{name}." if section_type(field.annotation) else f"data.{name}"  # a section: its keys
            for name, field in DataConfig.model_fields.items()}
    assert set(ROW_SHAPING_FIELDS) == {name for name, key in keys.items() if not resumable(key)}


NOT_SCORING = {
    "task": "enters the base-evaluation key resolved, beside these settings",
    "compare_base": "whether the base model is evaluated at all",
    "cache_base": "whether its evaluation is kept",
    "baselines": "other models, scored apart from the base model",
    "num_examples": "what the report shows",
    "reference": "what is measured of the tuned model beside its scores",
    "output_schema": "read by the gate's output-validity check, never by the scores",
}


def test_every_evaluate_setting_is_in_the_base_evaluation_key_or_said_not_to_change_the_scores():
    from tunesmith.evaluate.cache import SCORING_SETTINGS

    assert set(SCORING_SETTINGS).isdisjoint(NOT_SCORING)
    assert set(SCORING_SETTINGS) | set(NOT_SCORING) == set(EvaluateConfig.model_fields)


def test_the_sections_a_sweep_cannot_vary_are_sections():
    from tunesmith.config.search_space import NOT_SEARCHABLE

    assert all(section_type(RunConfig.model_fields[name].annotation) for name in NOT_SEARCHABLE)


def test_every_monitor_threshold_has_its_check():
    from tunesmith.monitor.analysis import CHECKS

    thresholds = {name for name in MonitorConfig.model_fields if name.startswith(("max_", "min_"))} - {"min_requests"}
    assert sorted(setting for _, _, setting, _ in CHECKS) == sorted(thresholds)


def test_the_tables_of_each_task_cover_exactly_the_tasks():
    from tunesmith.evaluate.tasks import TASK_DETAILS
    from tunesmith.report.summary import HEADLINE_METRICS

    assert set(TASK_DETAILS) == set(HEADLINE_METRICS) == set(get_args(TaskName))
    assert all(set(names) <= {*TASK_METRICS[task], *ALWAYS_REPORTED} for task, names in HEADLINE_METRICS.items())


def test_every_verdict_has_its_label_its_swap_and_its_category():
    from tunesmith.review.judge import _SWAPPED
    from tunesmith.review.stats import CATEGORIES
    from tunesmith.review.store import VERDICTS
    from tunesmith.ui.review_pages import VERDICT_LABELS

    assert list(VERDICT_LABELS) == list(VERDICTS) and set(_SWAPPED) == set(_SWAPPED.values()) == set(VERDICTS)
    assert len(CATEGORIES) == len(VERDICTS) and set(CATEGORIES) - {"first", "second"} == set(VERDICTS) - {"a", "b"}


def test_the_review_export_columns_are_judgment_fields():
    from tunesmith.review.export import COLUMNS
    from tunesmith.review.store import Judgment

    fields = {field.name for field in dataclasses.fields(Judgment)} | {"winner"}  # a property of the judgment
    assert set(COLUMNS) - fields == {"prompt"}  # the prompt is read from the item


def test_every_command_group_is_in_the_cli():
    from tunesmith.cli import GROUPS

    groups = {path.stem for path in (SOURCE / "cli").glob("*_commands.py")}
    assert {group.__name__.rpartition(".")[2] for group in GROUPS} == groups


def test_the_sweep_report_orders_every_trial_state():
    from tunesmith.experiments.sweep_report import ORDER

    assert set(ORDER) == set(TrialState)


def test_a_gguf_quant_has_its_file_type():
    from tunesmith.export.gguf import FILE_TYPES, TENSOR_TYPES

    assert set(FILE_TYPES) == set(TENSOR_TYPES) == set(get_args(GgufQuant))


def test_the_stages_every_process_runs_are_stages():
    from tunesmith.pipeline import EVERY_PROCESS, stages

    assert EVERY_PROCESS <= {name for name, _ in stages()}


def test_a_strategy_the_launcher_asks_for_is_a_strategy():
    from tunesmith.train.strategy import _LAUNCHER_STRATEGIES

    strategies = get_args(DistributedConfig.model_fields["strategy"].annotation)
    assert set(_LAUNCHER_STRATEGIES.values()) <= set(strategies)


def test_every_run_status_has_its_style():
    from tunesmith.ui.runs import STATUSES

    style = (SOURCE / "ui" / "static" / "style.css").read_text(encoding="utf-8")
    assert [status for status in STATUSES if f".status-{status} " not in style] == []


def test_every_rag_setting_that_changes_rows_makes_a_run_read_rag_rows():
    from tunesmith.config import validate_config
    from tunesmith.config.rag_section import ROW_SETTINGS
    from tunesmith.retrieval import uses_rows

    for name in ROW_SETTINGS:
        rag = {"documents": "d.jsonl", "gold_column": "doc", name: True}
        assert uses_rows(validate_config({"data": {"train": "t.jsonl"}, "rag": rag})), name
    assert not uses_rows(validate_config({"data": {"train": "t.jsonl"}, "rag": {"documents": "d.jsonl"}}))
