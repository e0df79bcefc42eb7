"""Chat templates (`model.chat_template`): every template supervises exactly each assistant reply plus the
model's EOS, renders conversations as a growing prefix, and reaches evaluation, chat and export."""

from __future__ import annotations

import pytest
import yaml

from tunesmith.config.schema import ModelConfig
from tunesmith.data.example import Example
from tunesmith.data.templates import BUILTIN_TEMPLATES, apply_chat_template_choice
from tunesmith.data.tokenize import IGNORE_INDEX, encode_texts, tokenize_example
from tunesmith.errors import ConfigError, ModelError
from tunesmith.models import load_tokenizer

CONVERSATION = (
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris."},
    {"role": "user", "content": "Write a short poem about the sea."},
    {"role": "assistant", "content": "The waves roll in, the tide goes out."},
)
TEMPLATES = [*BUILTIN_TEMPLATES, "model"]


@pytest.fixture(scope="module")
def real_tokenizer():
    try:
        return load_tokenizer(ModelConfig())
    except ModelError as exc:
        pytest.skip(f"the default model is not on disk: {exc}")


@pytest.fixture(params=["tiny", "real"])
def tokenizer(request, tiny_tokenizer, real_tokenizer):
    """A fresh copy per test: applying a template changes the tokenizer."""
    import copy

    return copy.deepcopy(tiny_tokenizer if request.param == "tiny" else real_tokenizer)


@pytest.mark.parametrize("choice", TEMPLATES)
def test_supervised_tokens_are_each_reply_plus_eos(tokenizer, choice):
    apply_chat_template_choice(tokenizer, choice)
    item = tokenize_example(Example(messages=CONVERSATION, source="x:1"), tokenizer, max_length=1024)
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


def test_config_loading_knows_every_named_template():
    from tunesmith.config import loading
    from tunesmith.data.templates import TEMPLATE_CHOICES

    assert set(loading._NAMED_TEMPLATES) == set(TEMPLATE_CHOICES)


def test_load_tokenizer_applies_the_choice(tiny_model_dir):
    from tunesmith.data.tokenize import render_prompt

    tokenizer = load_tokenizer(ModelConfig(name=str(tiny_model_dir), chat_template="alpaca"))
    assert tokenizer.chat_template == BUILTIN_TEMPLATES["alpaca"]
    assert render_prompt(tokenizer, [CONVERSATION[1]]).endswith("### Response:\n")
    own = load_tokenizer(ModelConfig(name=str(tiny_model_dir)))
    assert "<|im_start|>" in own.chat_template


def test_export_saves_the_chosen_template(tmp_path, tiny_model_dir):
    """Chat and any downstream user load the exported tokenizer: it must render with the trained template."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunesmith.config import save_config, validate_config
    from tunesmith.deploy import export_run
    from tunesmith.run_dir import RunDir

    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    config = validate_config({"model": {"name": str(tiny_model_dir), "chat_template": "llama-3"},
                              "data": {"train": "train.jsonl"}, "method": "full"})
    save_config(config, run.config_path)
    assert yaml.safe_load(run.config_path.read_text())["model"]["chat_template"] == "llama-3"
    AutoModelForCausalLM.from_pretrained(tiny_model_dir).save_pretrained(run.best)
    merged = export_run(run.root)["merged"]
    exported = AutoTokenizer.from_pretrained(merged)
    assert exported.chat_template == BUILTIN_TEMPLATES["llama-3"]
