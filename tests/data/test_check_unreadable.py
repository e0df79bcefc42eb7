"""`data check` on a file with unreadable rows: they are listed (capped, the rest counted), the readable rows
are still checked, and the exit code says which case it is (2 unreadable, 1 findings, 0 clean)."""

from __future__ import annotations

import json

import pytest

from tunesmith.config.schema import DataConfig
from tunesmith.data.check import run_check
from tunesmith.data.splits import load_splits
from tunesmith.errors import DataError


def write_lines(path, lines) -> str:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def good(i: int) -> str:
    return json.dumps({"prompt": f"Question number {i} about animals?", "completion": f"Answer {i}."})


def test_unreadable_rows_are_listed_up_to_max_errors(tmp_path, tiny_model_dir):
    lines = []
    for i in range(1, 41):
        lines.append(good(i) if i % 4 else '{"prompt": "broken"')  # every 4th line is bad JSON
    lines[1] = json.dumps({"prompt": "Question?", "completion": 3})  # line 2: wrong type
    path = write_lines(tmp_path / "mixed.jsonl", lines)
    model = f"model.name={tiny_model_dir}"

    text, code = run_check(path, [model, "data.check.max_errors=4"], as_json=False)

    assert code == 2
    listed = text.split("Unreadable rows (11, skipped; the rest is checked):\n")[1].split("\n\n")[0].splitlines()
    assert listed[0] == f"  {path}:2: key 'completion' must be a string, got int 3"
    assert [line.split(": ")[0] for line in listed[1:4]] == [f"  {path}:4", f"  {path}:8", f"  {path}:12"]
    assert listed[4] == "  ... and 7 more"
    assert f"mixed.jsonl  29" in text  # the 29 readable rows were checked
    assert "No problems found in the readable rows." in text

    summary = json.loads(run_check(path, [model], as_json=True)[0])
    assert summary["unreadable_count"] == 11 and len(summary["unreadable"]) == 11
    assert summary["has_problems"] is True


def test_exit_codes_clean_findings_unreadable(tmp_path, tiny_model_dir):
    model = [f"model.name={tiny_model_dir}"]
    clean = write_lines(tmp_path / "clean.jsonl", [good(1), good(2)])
    assert run_check(clean, model, as_json=False)[1] == 0
    findings = write_lines(tmp_path / "dup.jsonl", [good(1), good(1)])
    assert run_check(findings, model, as_json=False)[1] == 1
    unreadable = write_lines(tmp_path / "bad.jsonl", [good(1), good(2), "[1, 2]"])
    text, code = run_check(unreadable, model, as_json=False)
    assert code == 2 and f"{unreadable}:3: expected a JSON object" in text


def test_a_run_still_stops_at_the_first_bad_row(tmp_path):
    path = write_lines(tmp_path / "train.jsonl", [good(i) for i in range(1, 20)] + ["{oops", "{oops"])
    with pytest.raises(DataError, match=r"train\.jsonl:20: malformed JSON"):
        load_splits(DataConfig(path=path))


def test_a_file_with_no_readable_row_is_an_error(tmp_path, tiny_model_dir):
    path = write_lines(tmp_path / "all_bad.jsonl", ["{oops", "[1]"])
    with pytest.raises(DataError, match="all_bad.jsonl"):
        run_check(path, [f"model.name={tiny_model_dir}"], as_json=False)


def test_a_run_config_lists_unreadable_rows_and_checks_the_rest(tmp_path, tiny_model_dir):
    lines = [good(i) for i in range(1, 31)]
    lines[6] = "{oops"
    lines[19] = json.dumps({"prompt": "Question?"})
    write_lines(tmp_path / "train.jsonl", lines)
    config = tmp_path / "run.yaml"
    config.write_text(f"model: {{name: {tiny_model_dir}}}\ndata: {{path: train.jsonl}}\n", encoding="utf-8")

    summary = json.loads(run_check(str(config), [], as_json=True)[0])

    assert summary["unreadable_count"] == 2
    assert [entry.split(": ")[0].rsplit("/", 1)[-1] for entry in summary["unreadable"]] == [
        "train.jsonl:7", "train.jsonl:20"]
    assert sum(split["rows"] for split in summary["splits"].values()) == 28
    assert run_check(str(config), [], as_json=False)[1] == 2
