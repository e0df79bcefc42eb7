"""examples/sms_loop: prepare.py's files are reproducible and hold the style out where they should; the loop's
pieces (round configs, simulated annotators, the before/after table) work on small inputs."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sms_loop"


def _module(name: str):
    if str(EXAMPLE) not in sys.path:
        sys.path.insert(0, str(EXAMPLE))   # loop.py imports before_after.py from beside it
    spec = importlib.util.spec_from_file_location(f"sms_loop_{name}", EXAMPLE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module   # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def prepare():
    return _module("prepare")


@pytest.fixture(scope="module")
def files(prepare) -> dict[str, list[dict]]:
    return prepare.split(prepare.read_jsonl(prepare.SOURCE), prepare.read_jsonl(prepare.GOLD_TEST))


def test_committed_files_are_what_prepare_writes(prepare, files):
    for name, rows in files.items():
        assert prepare.read_jsonl(EXAMPLE / f"{name}.jsonl") == rows, f"{name}.jsonl is stale: run prepare.py"


def test_the_style_is_held_out_of_training_and_arrives_in_the_shifted_stream(prepare, files):
    trained = files["round1_train"] + files["validation"]
    assert not [row for row in trained if prepare.is_style(row)]
    normal = [row for row in files["stream"] if row["part"] == "normal"]
    shifted = [row for row in files["stream"] if row["part"] == "shifted"]
    assert len(normal) == prepare.NORMAL_ROWS and not any(row["style"] for row in normal)
    assert sum(row["style"] for row in shifted) >= 25
    assert all(prepare.is_style(row) for row in files["shifted_slice"]) and len(files["shifted_slice"]) >= 25
    assert [row["style"] for row in files["stream"]] == [prepare.is_style(row) for row in files["stream"]]


def test_the_slice_is_no_near_copy_of_a_stream_row_and_nothing_served_is_near_the_gold_test_set(prepare, files):
    from tunesmith.data.check.near_duplicates import jaccard, shingles

    streamed = [shingles(row["text"]) for row in files["stream"]]
    for row in files["shifted_slice"]:
        assert max(jaccard(shingles(row["text"]), other) for other in streamed) < prepare.GROUP_THRESHOLD
    # Exhaustively (every test row sharing a shingle), not through prepare's MinHash search.
    test = [shingles(row["text"]) for row in prepare.read_jsonl(prepare.GOLD_TEST)]
    holding: dict[tuple, set[int]] = {}
    for index, cut in enumerate(test):
        for shingle in cut:
            holding.setdefault(shingle, set()).add(index)
    for row in files["stream"] + files["shifted_slice"]:
        mine = shingles(row["text"])
        sharing = set().union(*(holding.get(shingle, set()) for shingle in mine))
        assert all(jaccard(mine, test[index]) < prepare.LEAK_THRESHOLD for index in sharing), row["text"]


def test_groups_join_rewordings_transitively(prepare):
    rows = [{"text": t} for t in ("call now to meet hot singles in your area tonight 0900",
                                  "call now to meet hot singles in your area tonight 0911",
                                  "a completely different message about lunch plans today",
                                  "call now to meet hot singles in your area tonight 0911 free")]
    assert [len(group) for group in prepare.groups(rows, prepare.GROUP_THRESHOLD)] == [3, 1]


@pytest.fixture()
def loop_module():
    return _module("loop")


def test_round_config_points_at_the_example_data_and_the_loop_folder(loop_module, tmp_path):
    import yaml

    from tunesmith.config import load_config
    from tunesmith.data.splits import load_splits

    loop = loop_module.Loop(tmp_path / "out", port=1)
    config = yaml.safe_load(loop.round_config("round-1").read_text())
    assert config["data"]["train"] == str(EXAMPLE / "round1_train.jsonl")
    labels = tmp_path / "labels.jsonl"   # as `label export` writes them: tunesmith's own column names
    labels.write_text('{"text": "hot singles txt CHAT now", "label": "spam"}\n'
                      '{"text": "see you at 5", "label": "ham"}\n')
    path = loop.round_config("round-2", labels)
    config = yaml.safe_load(path.read_text())
    assert config["data"]["sources"] == [{"path": str(EXAMPLE / "round1_train.jsonl")},
                                         {"path": str(labels), "columns": {"label": "label"}}]
    assert config["data"]["test"] == str((EXAMPLE.parent / "sms_spam" / "test.jsonl").resolve())
    assert config["output"] == {"dir": str(tmp_path / "out" / "runs"), "name": "round-2"}
    loaded = load_config(path)
    assert loaded.gate is not None
    # round 2 trains on every row of both sources and is scored on the 1,000 gold test rows, as round 1 is
    splits = load_splits(loaded.data)
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (1602, 128, 1000)
    assert splits.labels == ["ham", "spam"] and splits.train[-1].label == "ham"


def test_the_simulated_annotator_labels_every_item_from_gold_and_export_writes_them(loop_module, tmp_path, cli):
    from tunesmith.label import LabelQueue, QueueMeta

    run = tmp_path / "run"
    run.mkdir()
    config = loop_module.Loop(tmp_path / "out", port=1).round_config("run")
    (run / "config.yaml").write_text(config.read_text())
    meta = QueueMeta(run=str(run), log_dir="logs", task="classification", labels=["ham", "spam"],
                     format="classification", strategy="mixed", budget=2, created="2026-01-01T00:00:00+00:00",
                     teacher_model=None)
    items = [{"request_id": f"r{n}", "input": text, "prediction": "ham", "confidence": 0.6, "novelty": 0.1,
              "reason": "least confident: 0.60"} for n, text in enumerate(["hot singles txt CHAT", "see you at 5"])]
    queue = tmp_path / "queue.db"
    LabelQueue.create(queue, meta, items).close()
    gold = {"hot singles txt CHAT": "spam", "see you at 5": "ham"}
    assert loop_module.label_from_gold(queue, gold) == 2
    with pytest.raises(loop_module.LoopError, match="not a stream row"):
        loop_module.label_from_gold(queue, {})
    code, _, error = cli("label", "export", str(queue), str(tmp_path / "labels.jsonl"))
    assert code == 0, error
    rows = [json.loads(line) for line in (tmp_path / "labels.jsonl").read_text().splitlines()]
    assert {row["text"]: row["label"] for row in rows} == gold   # tunesmith's own column names


def test_the_loop_refuses_an_output_folder_inside_examples_or_one_already_used(loop_module, tmp_path, capsys):
    with pytest.raises(SystemExit):
        loop_module.main(["--out", str(EXAMPLE / "runs")])
    assert "--out must lie outside examples/" in capsys.readouterr().err
    (tmp_path / "runs").mkdir()
    with pytest.raises(SystemExit):
        loop_module.main(["--out", str(tmp_path)])
    assert "already holds a loop's runs" in capsys.readouterr().err


def test_before_after_compares_the_same_rows_with_intervals(tmp_path):
    before_after = _module("before_after")
    truths = ["spam"] * 20 + ["ham"] * 20
    before = ["ham"] * 10 + ["spam"] * 10 + ["ham"] * 20       # 30 of 40 right
    after = ["spam"] * 19 + ["ham"] * 21                       # 39 of 40 right
    c = before_after.compare("slice", truths, before, after)
    assert (c.rows, c.before, c.after) == (40, 0.75, 0.975)
    assert c.difference == pytest.approx(0.225)
    assert c.difference_interval[0] > 0 and c.difference_interval[1] < 0.5
    assert (c.after_only_right, c.before_only_right) == (10, 1)
    assert c.mcnemar_p == pytest.approx(2 * (1 + 11) / 2**11)   # exact: twice P(X ≤ 1), X ~ Bin(11, 1/2)
    assert c.before_interval[0] < 0.75 < c.before_interval[1]
    table = before_after.write(tmp_path, [c], "round-1", "round-2")
    assert "| slice | 40 | 0.750 [" in table and (tmp_path / "before_after.json").exists()
    with pytest.raises(ValueError, match="truths"):
        before_after.compare("slice", truths, before, after[:-1])


def test_round_two_leakage_check_finds_a_labelled_row_that_repeats_a_test_row(loop_module, tmp_path, tiny_model_dir):
    import yaml

    gold = json.loads((EXAMPLE.parent / "sms_spam" / "test.jsonl").read_text().splitlines()[0])
    labels = tmp_path / "labels.jsonl"
    labels.write_text(json.dumps({"text": gold["text"], "label": gold["label_text"]}) + "\n")
    loop = loop_module.Loop(tmp_path / "out", port=1)
    path = loop.round_config("round-2", labels)
    config = yaml.safe_load(path.read_text())
    config["model"] = {"name": str(tiny_model_dir)}
    config["data"]["max_eval_rows"] = 20  # the first test rows: the check stays quick
    path.write_text(yaml.safe_dump(config))
    [leaked] = loop.test_leakage(path)
    assert leaked["locations"][0].startswith(f"{EXAMPLE.parent.resolve() / 'sms_spam' / 'test.jsonl'}:1")
