"""The run page's helpers: the run folder as a command names it."""

from __future__ import annotations

from tunesmith.ui.run_page import command_path


def test_a_command_names_the_run_relative_to_the_current_folder_when_it_can(tmp_path, monkeypatch):
    run = tmp_path / "experiments" / "sms spam"
    run.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert command_path(run) == "'experiments/sms spam'"  # quoted: a shell would split it
    monkeypatch.chdir(run)
    assert command_path(run) == "."
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert command_path(run) == f"'{run.resolve()}'"
