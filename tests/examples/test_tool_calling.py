"""examples/tool_calling: its data is what make_data.py writes, reads as tool rows, and its calls fit its tools."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

from tunesmith.config import load_config
from tunesmith.data.check.data_report import check_file
from tunesmith.models.templates import apply_chat_template_choice

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tool_calling"


def test_the_data_is_what_make_data_writes(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("make_data", EXAMPLE / "make_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "HERE", tmp_path)
    module.main()
    for name in ("train", "validation", "test"):
        assert (tmp_path / f"{name}.jsonl").read_bytes() == (EXAMPLE / f"{name}.jsonl").read_bytes()


def test_every_split_reads_and_its_calls_fit_the_tools(tiny_tokenizer):
    config = load_config(EXAMPLE / "config.yaml")
    tokenizer = apply_chat_template_choice(copy.deepcopy(tiny_tokenizer), config.model.chat_template)
    for name in ("train", "test"):
        data = config.data.model_copy(update={"path": str(EXAMPLE / f"{name}.jsonl")})
        report = check_file(EXAMPLE / f"{name}.jsonl", tokenizer, 4096, data)
        assert report.unreadable_count == 0
        assert not [f for f in report.findings if f.kind in ("tool_call", "duplicate", "template", "empty_output")]
