"""generate_text and chat_loop: greedy answers, streamed output, kept history, and the chat commands."""

from __future__ import annotations

import io

import pytest
import torch

from tunesmith.data.tokenize import prompt_token_ids, render_prompt
from tunesmith.export import export_run
from tunesmith.models import load_tuned_model
from tunesmith.predict import chat, chat_loop, generate_text
from tunesmith.run_dir import RunDir

NEW_TOKENS = 8


def scripted_input(lines: list[str]):
    """An ``input`` stand-in that answers with ``lines`` in order, then raises EOFError (Ctrl-D)."""
    remaining = list(lines)
    asked = []

    def input_fn(prompt: str) -> str:
        asked.append(prompt)
        if not remaining:
            raise EOFError
        return remaining.pop(0)

    input_fn.asked = asked
    return input_fn


def spy_on_build_messages(monkeypatch) -> list[tuple[list, str, str | None]]:
    calls = []
    original = chat.build_messages

    def spy(history, user_text, system=None):
        calls.append(([dict(message) for message in history], user_text, system))
        return original(history, user_text, system)

    monkeypatch.setattr(chat, "build_messages", spy)
    return calls


def greedy_by_hand(model, tokenizer, messages, max_new_tokens: int) -> str:
    """Reference greedy decoding: append the arg-max token until EOS or the budget, no KV cache, no generate()."""
    ids = prompt_token_ids(tokenizer, messages)
    new = []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            next_id = int(model(torch.tensor([ids + new])).logits[0, -1].argmax())
            if next_id == tokenizer.eos_token_id:
                break
            new.append(next_id)
    return tokenizer.decode(new, skip_special_tokens=True).strip()


def test_build_messages_orders_system_history_then_user():
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    assert chat.build_messages(history, "how are you?", system="Be brief.") == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "how are you?"},
    ]
    assert chat.build_messages([], "x") == [{"role": "user", "content": "x"}]


def test_generate_text_is_greedy_and_the_same_from_adapter_or_merged(lora_run):
    model, tokenizer = load_tuned_model(lora_run, torch.device("cpu"))
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Is this spam?"}]
    expected = greedy_by_hand(model, tokenizer, messages, NEW_TOKENS)
    assert expected  # the tiny model says something, so equality below is a real check

    from_adapter = generate_text(lora_run, "Is this spam?", max_new_tokens=NEW_TOKENS, system="Be brief.")
    export_run(RunDir(lora_run).config(), RunDir(lora_run))
    from_merged = generate_text(lora_run, "Is this spam?", max_new_tokens=NEW_TOKENS, system="Be brief.")
    assert from_adapter == expected
    assert from_merged == expected


def test_chat_loop_streams_replies_and_keeps_the_history(lora_run, monkeypatch):
    calls = spy_on_build_messages(monkeypatch)
    output = io.StringIO()
    input_fn = scripted_input(["Is this spam?", "Why?"])

    history = chat_loop(lora_run, max_new_tokens=NEW_TOKENS, input_fn=input_fn, output=output)

    first = generate_text(lora_run, "Is this spam?", max_new_tokens=NEW_TOKENS)
    assert first and history[:2] == [
        {"role": "user", "content": "Is this spam?"}, {"role": "assistant", "content": first},
    ]
    assert [message["role"] for message in history] == ["user", "assistant", "user", "assistant"]
    assert history[2]["content"] == "Why?"
    # The second turn is sent with the first exchange before it.
    assert calls[0][0] == [] and calls[1][0] == history[:2]
    _, tokenizer = load_tuned_model(lora_run, torch.device("cpu"))
    second_prompt = render_prompt(tokenizer, chat.build_messages(calls[1][0], "Why?"))
    assert f"<|im_start|>assistant\n{first}<|im_end|>" in second_prompt
    # Both replies were streamed to the output, each on its own line after the banner.
    lines = output.getvalue().splitlines()
    assert lines[0].startswith("Chatting with lora-run.")
    assert [line.strip() for line in lines[1:3]] == [first, history[3]["content"]]
    assert input_fn.asked == [chat.USER_PROMPT] * 3  # two turns, then EOF


def test_chat_loop_reset_clears_history_and_exit_stops_reading(lora_run, monkeypatch):
    calls = spy_on_build_messages(monkeypatch)
    output = io.StringIO()
    input_fn = scripted_input(["Is this spam?", "/reset", "  ", "Why?", "/exit", "never read"])

    history = chat_loop(lora_run, max_new_tokens=NEW_TOKENS, input_fn=input_fn, output=output)

    assert [call[0] for call in calls] == [[], []]  # after /reset the second question has no history
    assert [message["content"] for message in history][0] == "Why?" and len(history) == 2
    assert "(history cleared)" in output.getvalue()
    assert len(input_fn.asked) == 5  # "never read" was not asked for


@pytest.mark.parametrize("stop", ["/quit", KeyboardInterrupt])
def test_chat_loop_ends_on_quit_and_ctrl_c(lora_run, stop):
    def input_fn(prompt):
        if stop is KeyboardInterrupt:
            raise KeyboardInterrupt
        return stop

    assert chat_loop(lora_run, input_fn=input_fn, output=io.StringIO()) == []


def test_stream_reply_reraises_a_generation_error_instead_of_hanging(lora_run):
    model, tokenizer = load_tuned_model(lora_run, torch.device("cpu"))

    def broken_generate(**kwargs):
        raise RuntimeError("out of memory")

    model.generate = broken_generate
    with pytest.raises(RuntimeError, match="out of memory"):
        chat.stream_reply(model, tokenizer, [{"role": "user", "content": "hi"}], NEW_TOKENS, io.StringIO())


def test_generation_defaults_to_the_trained_system_prompt(lora_run):
    import yaml

    from tunesmith.predict.chat import trained_system_prompt

    config_path = lora_run / "config.yaml"
    assert trained_system_prompt(lora_run) is None
    raw = yaml.safe_load(config_path.read_text())
    raw["data"]["system_prompt"] = "Classify each SMS message as ham or spam."
    config_path.write_text(yaml.safe_dump(raw))
    assert trained_system_prompt(lora_run) == "Classify each SMS message as ham or spam."
    assert generate_text(lora_run, "hello", max_new_tokens=4) == generate_text(
        lora_run, "hello", max_new_tokens=4, system="Classify each SMS message as ham or spam.")
