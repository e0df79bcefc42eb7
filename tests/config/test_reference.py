"""The README's reference tables are generated from the code and kept current."""

from pathlib import Path

import pytest

from tunesmith.config.reference import TABLES, reference_markdown

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.parametrize("name", sorted(TABLES))
def test_readme_tables_are_generated_from_the_code(name):
    assert TABLES[name]() in README.read_text(encoding="utf-8"), (
        f"README's {name} table is stale: paste the output of `python -m tunesmith.config.reference {name}`"
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
