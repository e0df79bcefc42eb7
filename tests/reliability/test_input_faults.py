"""Inputs that used to end in a traceback, a hang or the wrong files read: a `**` glob through a symlink loop, a
`data clean` whose recursive glob reads OUT, YAML aliases that contain themselves or explode, a config file name
that is not UTF-8, a JSON Lines line too long to parse, a binary `.txt` RAG document. Each is one error line (or
the exact rows read), and nothing the user owns is replaced."""

from __future__ import annotations

import json
import os
import shutil
import time
import tracemalloc

import pytest

from tunesmith.config import load_config
from tunesmith.data import readers
from tunesmith.errors import ConfigError, RunError
from tunesmith.run_dir import RunDir


def _two_part_data(project, write_jsonl, spam_rows):
    """`parts/a.jsonl` (12 rows) and `parts/deep/b.jsonl` (12 more): what `parts/**/*.jsonl` reads (a
    non-recursive expansion reads `parts/*/*.jsonl`: only b.jsonl)."""
    rows = spam_rows(24)
    (project / "parts" / "deep").mkdir(parents=True)
    write_jsonl(project / "parts" / "a.jsonl", rows[:12])
    write_jsonl(project / "parts" / "deep" / "b.jsonl", rows[12:])


def test_clean_with_a_recursive_glob_never_replaces_a_file_it_reads(project, cli, write_jsonl, spam_rows,
                                                                    tiny_model_dir):
    _two_part_data(project, write_jsonl, spam_rows)
    before = (project / "parts" / "a.jsonl").read_bytes()
    code, _, error = cli("data", "clean", "parts/**/*.jsonl", "parts/a.jsonl", "--overwrite",
                         "--set", f"model.name={tiny_model_dir}")
    assert code == 2 and error == (
        "tunesmith: error: config: OUT: parts/a.jsonl is one of the input files (parts/a.jsonl); data clean never "
        "overwrites its input (write to another file)")
    assert (project / "parts" / "a.jsonl").read_bytes() == before


def test_a_symlink_loop_in_a_recursive_glob_reads_each_file_once(project, cli, write_jsonl, spam_rows,
                                                                  tiny_model_dir):
    _two_part_data(project, write_jsonl, spam_rows)
    os.symlink("..", project / "parts" / "deep" / "loop")  # parts/deep/loop/deep/loop/... is parts again
    code, out, error = cli("data", "clean", "parts/**/*.jsonl", "clean.jsonl", "--drop", "unreadable",
                           "--set", f"model.name={tiny_model_dir}")
    assert (code, error) == (0, "")
    assert out.splitlines()[:2] == ["kept 24 of 24 rows: wrote clean.jsonl", "removed nothing"]
    assert sorted({row.file for row in readers.read_rows("parts/**/*.jsonl")}) == ["parts/a.jsonl",
                                                                                 "parts/deep/b.jsonl"]


def test_a_self_containing_yaml_alias_is_a_config_error(project, cli):
    text = (project / "config.yaml").read_text() + "sweep:\n  params: &x {a: *x}\n"
    (project / "self.yaml").write_text(text)
    code, _, error = cli("config", "self.yaml")
    assert code == 2 and error == (
        f"tunesmith: error: config: self.yaml, line {len(text.splitlines())}: the alias *x is inside the node &x "
        "that it names (a structure that contains itself) (write the values out instead of referring back to an "
        "enclosing anchor)")
    code, _, error = cli("config", "config.yaml", "--set", "sweep.params=&y [*y]")
    assert code == 2 and error == (
        "tunesmith: error: config: sweep.params: the --set value: the alias *y is inside the node &y that it names "
        "(a structure that contains itself) (write the values out instead of referring back to an enclosing anchor)")


def _alias_bomb() -> str:
    """A "billion laughs" under sweep.params: under 1 KB, 9**9 values once expanded."""
    levels = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for depth in range(1, 9):
        name, previous = chr(ord("a") + depth), chr(ord("a") + depth - 1)
        levels.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    return "sweep:\n  params:\n" + "".join(f"    {level}\n" for level in levels)


def test_a_yaml_alias_bomb_is_refused_at_once(project, cli):
    bomb = _alias_bomb()
    assert len(bomb) < 1024
    (project / "bomb.yaml").write_text((project / "config.yaml").read_text() + bomb)
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(ConfigError) as raised:
        load_config(project / "bomb.yaml")
    seconds, (_, peak) = time.perf_counter() - started, tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert seconds < 1 and peak < 20 * 2**20
    line = next(number for number, text in enumerate((project / "bomb.yaml").read_text().splitlines(), 1)
                if text.strip().startswith("f:"))  # the sixth level: 9**6 values, over the limit of 100000
    assert str(raised.value) == (
        f"config: {project / 'bomb.yaml'}, line {line}: this value stands for more than 100000 values once its "
        "aliases are expanded (an alias bomb?) (write the values out)")
    code, _, error = cli("config", "bomb.yaml")
    assert code == 2 and error == f"tunesmith: error: {raised.value}".replace(str(project / "bomb.yaml"), "bomb.yaml")


def test_a_config_file_name_that_is_not_utf8_makes_no_run_folder(project, cli):
    name = os.fsdecode(b"conf\xff.yaml")
    try:
        shutil.copy(project / "config.yaml", project / name)
    except OSError as exc:  # a file system that takes UTF-8 names only (some macOS volumes)
        pytest.skip(f"this file system refuses a non-UTF-8 name: {exc}")
    code, _, error = cli("train", name)
    assert code == 2 and error == (
        "tunesmith: error: config: conf\\xff.yaml: the file name is not valid UTF-8 (rename the config file "
        "(tunesmith records its name in JSON and YAML, which are UTF-8))")
    assert not (project / "runs").exists()


def test_a_jsonl_line_over_the_row_limit_is_refused_before_it_is_parsed(project, cli, monkeypatch, spam_rows):
    monkeypatch.setattr(readers, "MAX_ROW_BYTES", 1000)
    rows = (project / "data.jsonl").read_text().splitlines()
    long_row = json.loads(rows[4])
    long_row["text"] += " " + "word " * 300
    rows[4] = json.dumps(long_row)
    rows[5] = rows[5] + " " * (1000 - len(rows[5].encode()))  # exactly at the limit: read
    (project / "data.jsonl").write_text("\n".join(rows) + "\n")
    size = len(rows[4].encode())
    code, _, error = cli("train", "config.yaml")
    assert code == 2 and error == (f"tunesmith: error: {project / 'data.jsonl'}:5: the line is {size} bytes long; "
                                   "a row may take at most 1000 bytes (shorten or split this row)")
    assert not (project / "runs").exists() or not any((project / "runs").glob("*/checkpoints"))


def test_a_long_line_is_never_held_whole(tmp_path, monkeypatch):
    """A line far over the limit is measured in chunks: reading it holds about a chunk, not the line."""
    monkeypatch.setattr(readers, "MAX_ROW_BYTES", 1000)
    path = tmp_path / "long.jsonl"
    path.write_bytes(b'{"text": "' + b"x" * (16 * 2**20) + b'"}\n{"text": "short"}\n')
    errors = []
    tracemalloc.start()
    rows = readers.read_rows(path, on_error=errors.append)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [row.data for row in rows] == [{"text": "short"}] and peak < 4 * 2**20
    assert [str(error) for error in errors] == [
        f"{path}:1: the line is {16 * 2**20 + 12} bytes long; a row may take at most 1000 bytes (shorten or split "
        "this row)"]


def test_a_binary_txt_rag_document_is_an_error_naming_it(project, cli):
    docs = project / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Paris is the capital of France.", encoding="utf-8")
    (docs / "b.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10")
    code, _, error = cli("rag", "index", "config.yaml", "--set", f"rag.documents={docs}")
    assert code == 2 and error == (f"tunesmith: error: {docs / 'b.txt'}: not UTF-8 text (it looks like UTF-16/UTF-32 "
                                   "or a binary file) (save the file as UTF-8)")
    (docs / "b.txt").write_bytes("Caf\u00e9 au lait.".encode("latin-1"))
    code, _, error = cli("rag", "index", "config.yaml", "--set", f"rag.documents={docs}")
    assert code == 2 and error == (f"tunesmith: error: {docs / 'b.txt'}:1: not valid UTF-8: byte 0xe9 at byte offset "
                                   "3 (column 4 of the line) (save the file as UTF-8)")


def test_an_alias_bomb_in_a_run_folders_config_is_a_damaged_config_at_once(project):
    run = project / "runs" / "planted"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text((project / "config.yaml").read_text() + _alias_bomb())
    started = time.perf_counter()
    with pytest.raises(RunError) as refused:
        RunDir(run).config()
    assert time.perf_counter() - started < 1.0
    assert str(refused.value).startswith(f"{run / 'config.yaml'} is damaged: ")
    assert "this value stands for more than 100000 values once its aliases are expanded" in str(refused.value)
