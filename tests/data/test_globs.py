"""The one glob expander: `glob.glob(recursive=True)`'s matches where there are no symlinks, and where there are,
each real file once and no loop followed."""

from __future__ import annotations

import glob
import os

import pytest

from tunesmith.data.globs import expand_data_path, expand_glob, files_under
from tunesmith.data.readers import data_files, read_rows
from tunesmith.errors import DataError


@pytest.fixture()
def tree(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("t.jsonl", "a/u.jsonl", "a/b/v.jsonl", "a/b/c/w.csv", ".hidden/h.jsonl", ".dot.jsonl", "x/y.jsonl",
                 "a[1].jsonl"):
        (tmp_path / "g" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "g" / name).write_text('{"n": 1}\n')
    return tmp_path


@pytest.mark.parametrize("pattern", ["g/*.jsonl", "g/**/*.jsonl", "g/**", "g/**/*", "g/*/*.jsonl", "g/.*",
                                     "g/.hidden/*", "g/**/b/*", "g/a/**/*.csv", "g/?/*.jsonl", "g/[ax]/*",
                                     "g/nothing/**/*.jsonl", "*/t.jsonl", "g/a/**/**/*.jsonl"])
def test_without_symlinks_it_matches_what_glob_matches(tree, pattern):
    expected = sorted({os.path.normpath(path) for path in glob.glob(pattern, recursive=True)})
    assert [str(path) for path in expand_glob(pattern)] == expected


def test_an_absolute_pattern_stays_absolute(tree):
    assert expand_glob(str(tree / "g" / "**" / "v.jsonl")) == [tree / "g" / "a" / "b" / "v.jsonl"]


def test_a_symlink_loop_is_not_followed(tree):
    os.symlink("../..", tree / "g" / "a" / "b" / "loop")  # g/a/b/loop is g
    assert [str(path) for path in expand_glob("g/**/*.jsonl")] == [
        "g/a/b/v.jsonl", "g/a/u.jsonl", "g/a[1].jsonl", "g/t.jsonl", "g/x/y.jsonl"]


def test_each_real_file_once_named_without_a_symlink(tree):
    os.symlink("a", tree / "g" / "0-link")  # sorts before the folder it names
    os.symlink("t.jsonl", tree / "g" / "0-t.jsonl")
    os.symlink("b", tree / "g" / "a" / "b2")  # a second name inside the walk
    assert [str(path) for path in expand_glob("g/**/*.jsonl")] == [
        "g/a/b/v.jsonl", "g/a/u.jsonl", "g/a[1].jsonl", "g/t.jsonl", "g/x/y.jsonl"]
    assert [str(path) for path in expand_glob("g/0-link/*.jsonl")] == ["g/0-link/u.jsonl"]  # its only name here


def test_a_folder_outside_reached_through_a_symlink_is_read(tree):
    (tree / "outside").mkdir()
    (tree / "outside" / "o.jsonl").write_text('{"n": 2}\n')
    os.symlink(tree / "outside", tree / "g" / "x" / "more")
    assert "g/x/more/o.jsonl" in [str(path) for path in expand_glob("g/**/*.jsonl")]


def test_two_links_into_one_another_do_not_multiply(tree):
    """Loops through two names at once grow as 2**depth in `glob`; here each folder is walked once."""
    os.symlink("..", tree / "g" / "a" / "up")
    os.symlink("../a", tree / "g" / "x" / "side")
    assert len(expand_glob("g/**/*.jsonl")) == 5


def test_a_literal_name_with_glob_characters_is_itself(tree):
    assert [str(path) for path in expand_data_path("g/a[1].jsonl")] == ["g/a[1].jsonl"]
    assert [str(path) for path in expand_data_path("g/a[1]*")] == []  # a glob: [1] matches the character 1


def test_a_folder_that_cannot_be_listed_is_an_error(tree):
    if os.geteuid() == 0:
        pytest.skip("root lists every folder")
    (tree / "g" / "a").chmod(0)
    try:
        with pytest.raises(DataError, match=r"^g/a: cannot list this folder: Permission denied$"):
            expand_glob("g/**/*.jsonl")
    finally:
        (tree / "g" / "a").chmod(0o755)


def test_a_matched_file_name_that_is_not_utf8_is_an_error(tree):
    try:
        (tree / "g" / os.fsdecode(b"bad\xff.jsonl")).write_text('{"n": 1}\n')
    except OSError as exc:
        pytest.skip(f"this file system refuses a non-UTF-8 name: {exc}")
    with pytest.raises(DataError) as caught:
        read_rows("g/*.jsonl")
    assert str(caught.value) == ("g/bad\\xff.jsonl: the file name is not valid UTF-8 (rename the file (tunesmith "
                                 "records file names in JSON and YAML, which are UTF-8))")


def test_data_files_and_the_reader_see_the_same_files(tree):
    assert [str(path) for path in files_under(tree / "g" / "a")] == [
        str(tree / "g" / "a" / name) for name in ("b/c/w.csv", "b/v.jsonl", "u.jsonl")]
    os.symlink("../..", tree / "g" / "a" / "b" / "loop")
    read = sorted({row.file for row in read_rows("g/**/*.jsonl")})
    assert [str(path) for path in data_files(["g/**/*.jsonl"])] == read == [
        "g/a/b/v.jsonl", "g/a/u.jsonl", "g/a[1].jsonl", "g/t.jsonl", "g/x/y.jsonl"]
    assert len(files_under(tree / "g")) == 6  # the loop's folder (g itself) is not walked again
