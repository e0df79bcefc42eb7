"""Chat templates (`model.chat_template`): every template supervises exactly each assistant reply plus the
model's EOS, renders conversations as a growing prefix, and reaches evaluation, chat and export."""

from __future__ import annotations

from typing import get_args

import pytest

from tunesmith.config.schema import ModelConfig
from tunesmith.config.vocabulary import TemplateName
from tunesmith.data.example import Example
from tunesmith.data.tokenize import IGNORE_INDEX, encode_texts, tokenize_example
from tunesmith.errors import ConfigError
from tunesmith.models import load_tokenizer
from tunesmith.models.templates import BUILTIN_TEMPLATES, MODEL_TEMPLATE, apply_chat_template_choice

CONVERSATION = (
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris."},
    {"role": "user", "content": "Write a short poem about the sea."},
    {"role": "assistant", "content": "The waves roll in, the tide goes out."},
)
TEMPLATES = [*BUILTIN_TEMPLATES, "model"]


@pytest.fixture(params=["tiny", "real"])
def tokenizer(request, tiny_tokenizer, default_tokenizer):
    """A fresh copy per test: applying a template changes the tokenizer."""
    import copy

    return copy.deepcopy(tiny_tokenizer if request.param == "tiny" else default_tokenizer)


@pytest.mark.parametrize("choice", TEMPLATES)
def test_supervised_tokens_are_each_reply_plus_eos(tokenizer, choice):
    apply_chat_template_choice(tokenizer, choice)
    item = tokenize_example(Example(messages=CONVERSATION, location="x:1"), tokenizer, max_length=1024)
    supervised = [token for token, label in zip(item.input_ids, item.labels) if label != IGNORE_INDEX]
    assert supervised == [label for label in item.labels if label != IGNORE_INDEX]
    replies = [m["content"] for m in CONVERSATION if m["role"] == "assistant"]
    eos = tokenizer.eos_token_id
    expected = [token for reply in encode_texts(tokenizer, replies) for token in [*reply, eos]]
    assert supervised == expected
    # the supervised tokens decode to the replies: nothing of the template leaks into the labels
    assert tokenizer.decode(supervised, skip_special_tokens=True) == "".join(replies)


@pytest.mark.parametrize("choice", TEMPLATES)
def test_rendering_grows_by_prefix_and_the_generation_prompt_renders(tokenizer, choice):
    apply_chat_template_choice(tokenizer, choice)
    messages = list(CONVERSATION)
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    for end, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = tokenizer.apply_chat_template(messages[:end], tokenize=False, add_generation_prompt=True)
        with_reply = tokenizer.apply_chat_template(messages[: end + 1], tokenize=False)
        assert with_reply.startswith(prompt) and full.startswith(with_reply)
        assert message["content"] in with_reply[len(prompt):]
        assert messages[end - 1]["content"] in prompt
    assert "You are a helpful assistant." in full


def test_builtins_write_their_own_markers(tiny_tokenizer):
    import copy

    expected = {"chatml": "<|im_start|>assistant\n", "llama-3": "<|start_header_id|>assistant<|end_header_id|>\n\n",
                "alpaca": "### Response:\n"}
    for name, marker in expected.items():
        tokenizer = apply_chat_template_choice(copy.deepcopy(tiny_tokenizer), name)
        prompt = tokenizer.apply_chat_template(list(CONVERSATION[1:2]), tokenize=False, add_generation_prompt=True)
        assert prompt.endswith(marker), name
    alpaca = apply_chat_template_choice(copy.deepcopy(tiny_tokenizer), "alpaca")
    assert alpaca.apply_chat_template(list(CONVERSATION[1:3]), tokenize=False).startswith("Below is an instruction")


def test_model_choice_without_a_template_names_the_key_and_the_builtins(tiny_tokenizer):
    import copy

    bare = copy.deepcopy(tiny_tokenizer)
    bare.chat_template = None
    with pytest.raises(ConfigError, match=r"model.chat_template: .*has no chat template.*chatml, llama-3, alpaca"):
        apply_chat_template_choice(bare, "model")


def test_template_file_missing_or_broken(tiny_tokenizer, tmp_path):
    import copy

    with pytest.raises(ConfigError, match=r"model.chat_template: .*nope.jinja"):
        apply_chat_template_choice(copy.deepcopy(tiny_tokenizer), str(tmp_path / "nope.jinja"))
    broken = tmp_path / "broken.jinja"
    broken.write_text("{% for message in messages %}{{ message['content'] }", encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot render a conversation"):
        apply_chat_template_choice(copy.deepcopy(tiny_tokenizer), str(broken))
    mine = tmp_path / "mine.jinja"
    mine.write_text(BUILTIN_TEMPLATES["plain"], encoding="utf-8")
    tokenizer = apply_chat_template_choice(copy.deepcopy(tiny_tokenizer), str(mine))
    assert tokenizer.chat_template == BUILTIN_TEMPLATES["plain"]


def test_every_named_template_is_the_model_s_or_a_builtin():
    assert list(get_args(TemplateName)) == [MODEL_TEMPLATE, *BUILTIN_TEMPLATES]


def test_load_tokenizer_applies_the_choice(tiny_model_dir):
    from tunesmith.data.tokenize import render_prompt

    tokenizer = load_tokenizer(ModelConfig(name=str(tiny_model_dir), chat_template="alpaca"))
    assert tokenizer.chat_template == BUILTIN_TEMPLATES["alpaca"]
    assert render_prompt(tokenizer, [CONVERSATION[1]]).endswith("### Response:\n")
    own = load_tokenizer(ModelConfig(name=str(tiny_model_dir)))
    assert "<|im_start|>" in own.chat_template
