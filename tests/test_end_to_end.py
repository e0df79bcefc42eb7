"""End to end on the real default model (SmolLM2-135M-Instruct): a few steps, eval, export, plain reload."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tunesmith.cli import main

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sms_spam" / "config.yaml"


@pytest.mark.slow
def test_run_then_reload_merged_with_plain_transformers(tmp_path, capsys):
    code = main([
        "run", str(EXAMPLE),
        "--set", f"output.dir={tmp_path}", "--set", "output.name=e2e",
        "--set", "data.max_train_rows=24", "--set", "data.max_eval_rows=12",
        "--set", "train.max_steps=3", "--set", "train.batch_size=4", "--set", "train.eval_every=3",
        "--set", "evaluate.num_examples=3",
    ])
    assert code == 0
    run = tmp_path / "e2e"
    assert f"report: {run / 'report.html'}" in capsys.readouterr().out
    for name in ("config.yaml", "metrics.jsonl", "eval.json", "predictions.jsonl", "report.md", "report.html",
                 "data_summary.json", "train_summary.json"):
        assert (run / name).is_file(), name
    for name in ("adapter", "merged", "checkpoints"):
        assert (run / name).is_dir(), name
    evaluation = json.loads((run / "eval.json").read_text())
    assert evaluation["task"] == "classification" and evaluation["num_examples"] == 12
    for side in ("base", "tuned"):
        assert 0.0 <= evaluation[side]["accuracy"] <= 1.0 and evaluation[side]["loss"] > 0
    assert len((run / "predictions.jsonl").read_text().splitlines()) == 12

    # The merged folder must load and generate without tunesmith installed in the process.
    script = (
        "import sys, torch\n"
        "assert 'tunesmith' not in sys.modules\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        f"path = {str(run / 'merged')!r}\n"
        "tok = AutoTokenizer.from_pretrained(path)\n"
        "model = AutoModelForCausalLM.from_pretrained(path)\n"
        "ids = tok.apply_chat_template([{'role': 'user', 'content': 'Free entry! Win cash now'}],"
        " add_generation_prompt=True, return_tensors='pt', return_dict=True)\n"
        "out = model.generate(**ids, max_new_tokens=5, do_sample=False)\n"
        "print('GENERATED:' + tok.decode(out[0, ids['input_ids'].shape[1]:], skip_special_tokens=True))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "GENERATED:" in result.stdout
