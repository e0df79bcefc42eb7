"""`tunesmith data check` and `tunesmith data clean` as a user runs them: output, exit codes, one-line errors."""

from __future__ import annotations

import json

from tunesmith.cli import main


def write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return str(path)


ROWS = [{"prompt": "Hi there, how are you?", "completion": "Fine, thanks."},
        {"prompt": "What is two plus two?", "completion": "Four."}]


def test_data_check_exit_codes_and_json(tmp_path, tiny_model_dir, capsys):
    model = ["--set", f"model.name={tiny_model_dir}"]
    clean = write_jsonl(tmp_path / "clean.jsonl", ROWS)
    assert main(["data", "check", clean, *model]) == 0
    out = capsys.readouterr().out
    assert "No problems found." in out and "template round trip: ok" in out and "[[Fine, thanks.<|im_end|>]]" in out

    dup = write_jsonl(tmp_path / "dup.jsonl", ROWS + ROWS[:1])
    assert main(["data", "check", dup, "--json", *model]) == 1
    summary = json.loads(capsys.readouterr().out)
    assert [(f["kind"], f["locations"]) for f in summary["findings"]] == [("duplicate", [f"{dup}:3 (same as {dup}:1)"])]

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(ROWS[0]) + "\n{oops\n", encoding="utf-8")
    assert main(["data", "check", str(bad), *model]) == 2
    captured = capsys.readouterr()
    assert f"  {bad}:2: malformed JSON" in captured.out and captured.err == ""


def test_data_clean_writes_and_reports(tmp_path, tiny_model_dir, capsys):
    source = write_jsonl(tmp_path / "in.jsonl", ROWS + ROWS[:1])
    target = tmp_path / "out.jsonl"
    assert main(["data", "clean", source, str(target), "--set", f"model.name={tiny_model_dir}"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:3] == [f"kept 2 of 3 rows: wrote {target}", "removed: duplicate 1",
                       f"  {source}:3: duplicate (same as {source}:1)"]
    assert [json.loads(line) for line in target.read_text().splitlines()] == ROWS


def test_data_clean_refuses_to_overwrite_its_input(tmp_path, capsys):
    source = write_jsonl(tmp_path / "in.jsonl", ROWS)
    before = (tmp_path / "in.jsonl").read_bytes()
    # The model is never loaded: the check of OUT comes first.
    assert main(["data", "clean", source, source, "--set", "model.name=/nonexistent-model"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tunesmith: error: config: OUT:") and "never overwrites its input" in err
    assert "\n" not in err and (tmp_path / "in.jsonl").read_bytes() == before


def test_data_clean_with_a_config(tmp_path, tiny_model_dir, capsys):
    source = write_jsonl(tmp_path / "in.jsonl", [{"q": "Hello there my friend", "a": "hello there my friend"},
                                                 {"q": "Name a colour.", "a": "Blue."}])
    config = tmp_path / "run.yaml"
    config.write_text(f"model:\n  name: {tiny_model_dir}\ndata:\n  train: in.jsonl\n  format: prompt_completion\n"
                      "  columns: {prompt: q, completion: a}\n  check:\n    drop: [copied_input]\n", encoding="utf-8")
    target = tmp_path / "out.jsonl"
    assert main(["data", "clean", source, str(target), "--config", str(config)]) == 0
    assert "removed: copied_input 1" in capsys.readouterr().out
    assert [json.loads(line) for line in target.read_text().splitlines()] == [{"q": "Name a colour.", "a": "Blue."}]
