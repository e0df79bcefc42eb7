"""The CLI as a user meets it: one-line errors naming the file and line or the config key, no tracebacks, the
right exit codes; `data check` and `data clean`; every command has a handler."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from tunesmith.cli import main


def run_cli(*args, cwd=None):
    result = subprocess.run([sys.executable, "-m", "tunesmith.cli", *args], capture_output=True, text=True, cwd=cwd)
    return result.returncode, result.stdout, result.stderr


BAD_FILES = {
    "malformed.jsonl": (b'{"text": "a", "label": "ham"}\n{"text": "b", "label": "spam"}\n{"text": "c", "label"\n',
                        "malformed.jsonl:3:"),
    "missing.jsonl": (b'{"text": "a", "label": "ham"}\n{"txt": "b", "label": "spam"}\n', "missing.jsonl:2:"),
    "empty.jsonl": (b"", "empty.jsonl:1:"),
    "null_label.jsonl": (b'{"text": "a", "label": "ham"}\n{"text": "b", "label": null}\n', "null_label.jsonl:2:"),
    "latin1.jsonl": ('{"text": "a", "label": "ham"}\n{"text": "caf\u00e9", "label": "spam"}\n'.encode("latin-1"),
                     "latin1.jsonl:2:"),
    "broken.csv": (b'text,label\n"hello,ham\nworld,spam\n', "broken.csv:2:"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_data_is_named_by_file_and_line(tmp_path, tiny_model_dir, name):
    """A file that cannot be used at all is one error line; unreadable rows are listed as FILE:LINE: problem
    while the readable rows are still checked. Both exit 2, neither shows a traceback."""
    content, expected_prefix = BAD_FILES[name]
    path = tmp_path / name
    path.write_bytes(content)
    code, out, err = run_cli("data", "check", str(path), "--set", f"model.name={tiny_model_dir}", cwd=tmp_path)
    assert code == 2
    assert "Traceback" not in err
    where = str(tmp_path / expected_prefix)
    lines = [line for line in err.splitlines() if line.strip()]
    if lines:
        assert len(lines) == 1 and lines[0].startswith(f"tunesmith: error: {where}"), err
    else:
        assert out.startswith("Data check:") and f"\n  {where}" in out, out


def test_bad_config_key_is_named(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"data": {"train": "t.jsonl"}, "train": {"epochz": 1}}))
    assert main(["config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tunesmith: error: config: train.epochz: unknown key") and "train.epochs" in err


def test_bad_override_is_named(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"data": {"train": "t.jsonl"}}))
    assert main(["config", str(config), "--set", "method=qdora"]) == 2
    assert ("config: method: 'qdora' is not allowed; allowed values: 'lora', 'dora', 'qlora', 'full', 'dpo', "
            "'orpo' or 'simpo'" in capsys.readouterr().err)


def test_uncached_hub_id_offline_says_how_to_get_it(tmp_path, capsys, hub_cache):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"text": "a", "label": "ham"}) + "\n")
    assert main(["data", "check", str(data), "--set", "model.name=HuggingFaceTB/SmolLM2-135M"]) == 2
    err = capsys.readouterr().err
    assert "not in the Hugging Face cache" in err and "`hf download HuggingFaceTB/SmolLM2-135M`" in err
    assert "\n" not in err.strip()


@pytest.mark.parametrize("command", ["train", "run"])
def test_qlora_without_cuda_fails_before_a_run_folder_or_the_data(command, tmp_path, capsys, monkeypatch):
    from tunesmith.models import loading

    monkeypatch.setattr(loading.torch.cuda, "is_available", lambda: False)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"data": {"train": "missing.jsonl"}, "method": "qlora",
                                      "output": {"dir": str(tmp_path / "runs")}}))
    assert main([command, str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tunesmith: error: config: method: qlora quantizes the base model with bitsandbytes' "
                          "4-bit CUDA kernels, and this machine has no CUDA GPU") and "\n" not in err
    assert not (tmp_path / "runs").exists()  # refused before anything was made or read (the data file is missing)


def test_run_dir_commands_need_a_run(tmp_path, capsys):
    assert main(["eval", str(tmp_path)]) == 2
    assert "not a tunesmith run folder" in capsys.readouterr().err


def test_export_quant_needs_the_gguf_format(tmp_path, capsys):
    assert main(["export", str(tmp_path), "--quant", "q8_0"]) == 2
    assert "--quant applies to --format gguf only" in capsys.readouterr().err


ROWS = [{"prompt": "Hi there, how are you?", "completion": "Fine, thanks."},
        {"prompt": "What is two plus two?", "completion": "Four."}]


def test_data_check_exit_codes_and_json(tmp_path, tiny_model_dir, capsys, write_jsonl):
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


def test_data_clean_writes_and_reports(tmp_path, tiny_model_dir, capsys, write_jsonl):
    source = write_jsonl(tmp_path / "in.jsonl", ROWS + ROWS[:1])
    target = tmp_path / "out.jsonl"
    assert main(["data", "clean", source, str(target), "--set", f"model.name={tiny_model_dir}"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:3] == [f"kept 2 of 3 rows: wrote {target}", "removed: duplicate 1",
                       f"  {source}:3: duplicate (same as {source}:1)"]
    assert [json.loads(line) for line in target.read_text().splitlines()] == ROWS


def test_data_clean_refuses_to_overwrite_its_input(tmp_path, capsys, write_jsonl):
    source = write_jsonl(tmp_path / "in.jsonl", ROWS)
    before = (tmp_path / "in.jsonl").read_bytes()
    # The model is never loaded: the check of OUT comes first.
    assert main(["data", "clean", source, source, "--set", "model.name=/nonexistent-model"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tunesmith: error: config: OUT:") and "never overwrites its input" in err
    assert "\n" not in err and (tmp_path / "in.jsonl").read_bytes() == before


def test_data_clean_with_a_config(tmp_path, tiny_model_dir, capsys, write_jsonl):
    source = write_jsonl(tmp_path / "in.jsonl", [{"q": "Hello there my friend", "a": "hello there my friend"},
                                                 {"q": "Name a colour.", "a": "Blue."}])
    config = tmp_path / "run.yaml"
    config.write_text(f"model:\n  name: {tiny_model_dir}\ndata:\n  train: in.jsonl\n  format: prompt_completion\n"
                      "  columns: {prompt: q, completion: a}\n  check:\n    drop: [copied_input]\n", encoding="utf-8")
    target = tmp_path / "out.jsonl"
    assert main(["data", "clean", source, str(target), "--config", str(config)]) == 0
    assert "removed: copied_input 1" in capsys.readouterr().out
    assert [json.loads(line) for line in target.read_text().splitlines()] == [{"q": "Name a colour.", "a": "Blue."}]


def test_every_command_of_the_parser_has_a_handler():
    from tunesmith.cli import HANDLERS, build_parser

    commands = build_parser()._subparsers._group_actions[0].choices
    expected = set()
    for name, parser in commands.items():
        groups = parser._subparsers._group_actions if parser._subparsers else []
        expected |= {f"{name} {sub}" for sub in groups[0].choices} if groups else {name}
    assert set(HANDLERS) == expected


def test_set_on_a_run_folder_updates_its_saved_config(tmp_path, tiny_model_dir, capsys):
    from tunesmith.config import save_config, validate_config
    from tunesmith.run_dir import RunDir

    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    save_config(validate_config({"model": {"name": str(tiny_model_dir)}, "data": {"train": "t.jsonl"}}),
                run.config_path)
    assert main(["report", str(run.root), "--set", "evaluate.num_examples=3"]) == 0
    assert run.config().evaluate.num_examples == 3
    assert capsys.readouterr().out.splitlines() == [str(run.report_md), str(run.report_html)]


def test_the_documented_error_examples_are_what_the_cli_prints(tmp_path):
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "getting-started.md").read_text(encoding="utf-8")
    example = page.split("$ tunesmith train config.yaml\n", 1)[1].split("\n```", 1)[0].splitlines()
    shown_folder = example[0].split("tunesmith: error: ", 1)[1].rsplit("/data.jsonl", 1)[0]
    (tmp_path / "data.jsonl").write_text('{"text": "Free entry! Win cash now", "label": "spam"}\n'
                                         '{"text": "See you at lunch?", "label": "ham"}\n'
                                         '{"text": "Call me back", "label"\n', encoding="utf-8")
    (tmp_path / "config.yaml").write_text("data:\n  path: data.jsonl\n", encoding="utf-8")
    code, _, err = run_cli("train", "config.yaml", cwd=tmp_path)
    assert code == 2 and err.strip() == example[0].replace(shown_folder, str(tmp_path))
    code, _, err = run_cli("config", "config.yaml", "--set", "train.lerning_rate=1e-4", cwd=tmp_path)
    assert code == 2 and err.strip() == example[2]


def test_data_check_of_a_config_whose_source_has_no_readable_row(tmp_path, tiny_model_dir, write_jsonl):
    write_jsonl(tmp_path / "good.jsonl", [{"prompt": f"q{i}", "completion": f"a{i}"} for i in range(20)])
    write_jsonl(tmp_path / "bad.jsonl", ["{oops", "[1]"])
    (tmp_path / "run.yaml").write_text(f"model: {{name: {tiny_model_dir}}}\n"
                                       "data: {sources: [{path: good.jsonl}, {path: bad.jsonl}]}\n", encoding="utf-8")
    code, out, err = run_cli("data", "check", "run.yaml", cwd=tmp_path)
    bad = tmp_path / "bad.jsonl"
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines() == [f"tunesmith: error: {bad}:1: malformed JSON: Expecting property name "
                                        f"enclosed in double quotes (column 2) (no row of {bad} is readable: 2 bad "
                                        "rows)"]
    assert f"  {bad}:1: malformed JSON" in out and f"  {bad}:2: expected a JSON object" in out
