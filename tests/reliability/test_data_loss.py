"""Nothing a user owns is replaced: `data clean` never writes over one of its inputs, however they are named,
nor over an existing file unless asked."""

from __future__ import annotations

import os


def test_clean_never_writes_over_a_file_its_glob_reads(project, cli, write_jsonl):
    parts = project / "parts"
    parts.mkdir()
    write_jsonl(parts / "part1.jsonl", [{"prompt": "a", "completion": "b"}] * 2)
    write_jsonl(parts / "part2.jsonl", [{"prompt": "c", "completion": "d"}])
    before = (parts / "part2.jsonl").read_bytes()
    code, _, error = cli("data", "clean", "parts/*.jsonl", "parts/part2.jsonl")
    assert code == 2 and error == (
        "tunesmith: error: config: OUT: parts/part2.jsonl is one of the input files (parts/part2.jsonl); data clean "
        "never overwrites its input (write to another file)")
    assert (parts / "part2.jsonl").read_bytes() == before


def test_clean_sees_through_symlinks_and_dot_dot(project, cli):
    (project / "link.jsonl").symlink_to(project / "data.jsonl")
    before = (project / "data.jsonl").read_bytes()
    for out in ("link.jsonl", "parts/../data.jsonl"):
        (project / "parts").mkdir(exist_ok=True)
        code, _, error = cli("data", "clean", "data.jsonl", out, "--overwrite")
        assert code == 2 and "is one of the input files" in error
    assert (project / "data.jsonl").read_bytes() == before


def test_clean_replaces_an_existing_output_only_when_asked(project, cli, tiny_model_dir):
    (project / "clean.jsonl").write_text("my own file\n", encoding="utf-8")
    code, _, error = cli("data", "clean", "data.jsonl", "clean.jsonl", "--set", f"model.name={tiny_model_dir}")
    assert code == 2 and error.endswith("clean.jsonl already exists; data clean does not replace a file unless "
                                        "asked (pass --overwrite to replace it, or name another file)")
    assert (project / "clean.jsonl").read_text() == "my own file\n"
    code, out, _ = cli("data", "clean", "data.jsonl", "clean.jsonl", "--overwrite", "--set",
                       f"model.name={tiny_model_dir}")
    assert code == 0 and out.startswith("kept ") and os.path.getsize(project / "clean.jsonl") > 100
