"""`tunesmith.data.pair_rows`: pairs written as `preference` rows under tunesmith's own keys, each once, the same
answers left out; the counts of what was left out."""

from __future__ import annotations

from tunesmith.config.schema import DataConfig
from tunesmith.data.formats import to_example
from tunesmith.data.pair_rows import REPEAT, SAME_ANSWERS, PairRows, preference_row
from tunesmith.data.rows import Row
from tunesmith.json_files import read_jsonl

SYSTEM, HI = {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}


def test_a_single_turn_prompt_is_written_as_strings_and_others_in_trls_conversational_shape():
    assert preference_row([SYSTEM, HI], "Hello!", "Go away.") == {
        "prompt": "Hi", "chosen": "Hello!", "rejected": "Go away.", "system": "Be brief."}
    turns = [HI, {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Name a city."}]
    row = preference_row(turns, "Paris.", "Rome.")
    assert row == {"prompt": turns, "chosen": [{"role": "assistant", "content": "Paris."}],
                   "rejected": [{"role": "assistant", "content": "Rome."}]}
    for written, prompt in ((preference_row([SYSTEM, HI], "Hello!", "Go away."), [SYSTEM, HI]), (row, turns)):
        example = to_example(Row("p.jsonl", 1, written), "preference", DataConfig(path="p.jsonl"), None)
        assert list(example.prompt_messages) == prompt and example.rejected["role"] == "assistant"


def test_repeats_and_identical_answers_are_left_out_and_counted(tmp_path):
    pairs = PairRows()
    assert pairs.add([HI], "Hello!", "Go away.")
    assert not pairs.add([HI], "Hello!", "Go away.")
    assert not pairs.add([HI], "Hello!", " Hello!\n")
    pairs.skip("a tie", 2)
    pairs.skip("nothing", 0)
    result = pairs.write(tmp_path / "pairs.jsonl")
    assert read_jsonl(tmp_path / "pairs.jsonl") == [{"prompt": "Hi", "chosen": "Hello!", "rejected": "Go away."}]
    assert result.skipped == {REPEAT: 1, SAME_ANSWERS: 1, "a tie": 2} and result.exit_code == 0
    assert result.render("judgment").splitlines() == [
        f"wrote 1 pair (preference: prompt, chosen, rejected) to {tmp_path / 'pairs.jsonl'}",
        "left out 4 judgments:", "  a tie: 2", f"  {REPEAT}: 1", f"  {SAME_ANSWERS}: 1"]
