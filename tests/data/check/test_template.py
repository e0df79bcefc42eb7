"""Template round trip: rendering, tokenizing and decoding real conversations gives back their text, and the
supervised tokens are exactly each learned reply plus EOS; a template that changes a reply is a finding."""

from __future__ import annotations

import pytest

from tunesmith.config.schema import DataConfig
from tunesmith.data.check.data_report import CheckSettings, check_data
from tunesmith.data.check.template import round_trip_problems, template_sample
from tunesmith.data.example import Example, Splits
from tunesmith.data.formats import convert_rows
from tunesmith.data.readers import read_rows


def real_examples(shared_data, name: str, count: int) -> list[Example]:
    rows = read_rows(shared_data / name)[:count]
    examples, _, _ = convert_rows({"train": rows}, DataConfig(path=str(shared_data / name)))
    return examples["train"]


@pytest.mark.parametrize("name, count", [("alpaca_2k.jsonl", 300), ("chat_oasst_en.jsonl", 60),
                                         ("chat_fastchat_identity.jsonl", 60)])
def test_real_conversations_survive_the_round_trip(shared_data, tiny_tokenizer, default_tokenizer, name, count):
    examples = real_examples(shared_data, name, count)
    assert any(sum(m["role"] == "assistant" for m in e.messages) > 1 for e in examples) or name == "alpaca_2k.jsonl"
    for tokenizer in (tiny_tokenizer, default_tokenizer):
        failures = {e.location: problems for e in examples if (problems := round_trip_problems(e, tokenizer))}
        assert failures == {}


def test_sample_marks_every_learned_reply(tiny_tokenizer):
    turns = ({"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
             {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye"},
             {"role": "assistant", "content": "Goodbye."})
    example = Example(messages=turns, location="c.jsonl:1")
    sample, finding = template_sample(example, "train", tiny_tokenizer, "assistant")
    assert finding is None and sample["round_trip"] == "ok"
    assert sample["text"] == ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                              "<|im_start|>assistant\n[[Hello.<|im_end|>]]\n<|im_start|>user\nBye<|im_end|>\n"
                              "<|im_start|>assistant\n[[Goodbye.<|im_end|>]]\n")
    reply_tokens = len(tiny_tokenizer("Hello.<|im_end|>Goodbye.<|im_end|>", add_special_tokens=False)["input_ids"])
    assert sample["supervised_tokens"] == reply_tokens
    unmarked = sample["text"].replace("[[", "").replace("]]", "")
    assert sample["total_tokens"] == len(tiny_tokenizer(unmarked, add_special_tokens=False)["input_ids"])


def test_a_template_that_rewrites_replies_is_a_finding(tiny_tokenizer):
    import copy

    trimming = copy.deepcopy(tiny_tokenizer)
    trimming.chat_template = trimming.chat_template.replace("message['content']", "message['content'] | trim")
    example = Example(messages=({"role": "user", "content": "Capital of France?"},
                                {"role": "assistant", "content": "Paris. "}), location="t.jsonl:1")
    assert round_trip_problems(example, tiny_tokenizer) == []
    problems = round_trip_problems(example, trimming)
    assert len(problems) == 1 and problems[0].startswith("the supervised tokens decode to ['Paris.<|im_end|>']")
    report = check_data(Splits(train=[example], validation=[], test=[], format="prompt_completion"),
                        CheckSettings(trimming, 64))
    [finding] = report.findings
    assert (finding.kind, finding.split, finding.locations) == ("template", "train", ["t.jsonl:1"])
    assert report.sample["round_trip"] == problems[0] and "template round trip: the supervised" in report.render()
