"""`tunesmith promote` and `tunesmith serve --watch` argument errors, in-process, as one line; `serve` and `ui`
bound beyond loopback without a secret refused before torch is imported (in a fresh interpreter)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tunesmith import distributed
from tunesmith.config import save_config, validate_config
from tunesmith.run_dir import RunDir


def test_promote_refuses_an_ungated_run_and_forces_it(tmp_path, cli):
    run = RunDir(tmp_path / "round-1")
    run.root.mkdir()
    save_config(validate_config({"model": {"name": "default"}, "data": {"train": "train.jsonl"}}), run.config_path)
    code, out, error = cli("promote", str(run.root))
    assert code == 2 and "round-1 has not passed a release gate" in error and "--force" in error
    assert not (tmp_path / "current").is_symlink()
    code, out, error = cli("promote", str(run.root), "--marker", str(tmp_path / "live"), "--force")
    assert (code, error) == (0, "") and os.readlink(tmp_path / "live") == "round-1"
    assert out.strip().endswith("not gated: run `tunesmith gate RUN` (forced)") and "(was nothing)" in out


def test_serve_watch_takes_one_marker(tmp_path, cli):
    code, _, error = cli("serve", str(tmp_path / "a"), str(tmp_path / "b"), "--watch")
    assert code == 2 and "--watch" in error and "one marker" in error
    code, _, error = cli("serve", str(tmp_path / "current"), "--watch", "--port", str(distributed.free_port()))
    assert code == 2 and "the marker" in error and "does not exist" in error


def test_serve_limits_must_be_above_zero(tmp_path, cli, capsys):
    cases = {("--max-request-mb", "-1"): "argument --max-request-mb: -1 must be above 0",
             ("--timeout", "nan"): "argument --timeout: nan must be above 0",
             ("--max-batch", "0"): "argument --max-batch: 0 must be above 0",
             ("--max-tokens", "1.5"): "argument --max-tokens: '1.5' is not a whole number"}
    for (option, value), message in cases.items():
        try:
            code, _, error = cli("serve", str(tmp_path / "a"), option, value)
        except SystemExit as stop:  # argparse ends a bad option with exit 2 and its own line
            code, error = stop.code, capsys.readouterr().err
        assert code == 2 and error.strip().splitlines()[-1] == f"tunesmith serve: error: {message}"


REFUSE_AND_LIST_IMPORTS = """
import sys
from tunesmith.cli import main
code = main(sys.argv[1:])
heavy = [name for name in ("torch", "transformers", "peft", "tunesmith.serve", "tunesmith.ui") if name in sys.modules]
print(code, *heavy)
"""


@pytest.mark.parametrize(("command", "secret"), [(["serve", "runs/x"], "an API key"), (["ui", "runs"], "a token")])
def test_an_exposed_bind_without_a_secret_is_refused_before_the_heavy_imports(command, secret):
    # A fresh interpreter: this test process has imported torch already. Without the secret in the environment.
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("TUNESMITH_API_KEY", "TUNESMITH_UI_TOKEN")}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", REFUSE_AND_LIST_IMPORTS, *command, "--host", "0.0.0.0"],
                          capture_output=True, text=True, env=environment, timeout=60)
    took = time.monotonic() - started
    assert done.stdout.split() == ["2"]  # exit code 2, and none of the heavy modules was imported by then
    error = done.stderr.strip()
    assert error.count("\n") == 0 and error.startswith("tunesmith: error: config: --host: binding 0.0.0.0")
    assert f"without {secret}" in error
    assert took < 3, f"the refusal took {took:.1f} s"
