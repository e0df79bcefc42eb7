"""The manual's reference tables are generated from the code and kept current: the config reference page whole,
and the row formats and data-check findings on the data page."""

from pathlib import Path

import pytest

from tunesmith.config.reference import REFERENCE_PAGE, TABLES, reference_markdown, reference_page, reference_rows

ROOT = Path(__file__).resolve().parents[2]
PAGE_OF_TABLE = {"formats": ROOT / "docs" / "data.md", "findings": ROOT / "docs" / "data.md"}
"""Where each table other than the config keys is pasted (the config keys are the whole reference page)."""


def test_the_config_reference_page_is_generated_from_the_code():
    assert (ROOT / REFERENCE_PAGE).read_text(encoding="utf-8") == reference_page(), (
        f"{REFERENCE_PAGE} is stale: run `python -m tunesmith.config.reference page > {REFERENCE_PAGE}`"
    )


def test_the_reference_page_shows_every_key_once():
    page = reference_page().splitlines()
    assert sorted(row for row in page if row.startswith("| `")) == sorted(reference_rows())


@pytest.mark.parametrize("name", sorted(PAGE_OF_TABLE))
def test_the_data_page_tables_are_generated_from_the_code(name):
    page = PAGE_OF_TABLE[name]
    assert TABLES[name]() in page.read_text(encoding="utf-8"), (
        f"{page.relative_to(ROOT)}'s {name} table is stale: paste the output of "
        f"`python -m tunesmith.config.reference {name}`"
    )


def test_every_field_is_documented():
    rows = reference_markdown().splitlines()[2:]
    assert rows and all(not row.rstrip().endswith("|  |") for row in rows)


def test_a_number_or_a_word_shows_both():
    rows = {row.split(" | ")[0]: row for row in reference_markdown().splitlines()}
    assert rows["| `train.epochs`"].startswith("| `train.epochs` | float \\| `auto` | `auto` |")
    assert rows["| `train.eval_every`"].startswith("| `train.eval_every` | int \\| `auto` | `auto` |")


def test_each_key_says_whether_a_resume_or_a_run_folder_command_may_change_it():
    rows = {row.split(" | ")[0]: row.split(" | ")[3] for row in reference_markdown().splitlines()[2:]}
    assert rows["| `train.max_steps`"] == "resume" and rows["| `data.check.drop`"] == "resume"
    assert rows["| `evaluate.task`"] == "resume, run folder" and rows["| `model.attention`"] == "resume, run folder"
    assert rows["| `lora.r`"] == "—" and rows["| `data.sources[].path`"] == "—"
    assert rows["| `sweep`"] == "resume" and rows["| `sweep.trials`"] == "resume"  # an optional section's keys too


def test_a_section_that_is_null_unless_given_lists_its_keys():
    rows = {row.split(" | ")[0]: row for row in reference_markdown().splitlines()}
    assert rows["| `sweep`"].startswith("| `sweep` | section \\| null | `null` |")
    assert rows["| `sweep.trials`"].startswith("| `sweep.trials` | int | `12` |")
