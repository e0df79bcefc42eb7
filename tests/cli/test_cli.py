"""The CLI as a user meets it: one-line errors, no tracebacks, the right exit codes."""

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
    assert main(["config", str(config), "--set", "method=qlora"]) == 2
    assert "config: method: 'qlora' is not allowed; allowed values: 'lora' or 'full'" in capsys.readouterr().err


def test_hub_id_gives_offline_hint(tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"text": "a", "label": "ham"}) + "\n")
    assert main(["data", "check", str(data), "--set", "model.name=HuggingFaceTB/SmolLM2-135M"]) == 2
    err = capsys.readouterr().err
    assert "not on disk and tunesmith runs offline" in err and "\n" not in err.strip()


def test_run_dir_commands_need_a_run(tmp_path, capsys):
    assert main(["eval", str(tmp_path)]) == 2
    assert "not a tunesmith run folder" in capsys.readouterr().err
