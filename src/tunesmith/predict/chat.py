"""Talk to a fine-tuned run: one-shot generation, and an interactive multi-turn chat that streams its replies.

Prompts go through the same chat template and tokenization as training (`prompt_token_ids`), so the model sees
at inference exactly the token boundaries it learned on. Decoding is greedy, so a prompt always gets the
same answer. transformers is imported where it is used (start-up time, see `tunesmith.models.loading`).
"""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path
from typing import Callable, TextIO

import torch

from tunesmith.data.example import Message
from tunesmith.data.tokenize import prompt_token_ids
from tunesmith.models import load_model_folder, load_tuned_model, stop_token_ids
from tunesmith.results.freshness import export_is_stale
from tunesmith.run_dir import RunDir

log = logging.getLogger("tunesmith")

EXIT_COMMANDS = frozenset({"/exit", "/quit"})
RESET_COMMAND = "/reset"
USER_PROMPT = "you> "


def generate_text(
    run_dir: str | Path, prompt: str, max_new_tokens: int = 128, system: str | None = None, use_merged: bool = True
) -> str:
    """The run's greedy answer to ``prompt``, sent as one user message (after ``system``; by default the
    system prompt the run was trained with)."""
    model, tokenizer = load_for_generation(run_dir, use_merged)
    system = trained_system_prompt(run_dir) if system is None else system
    inputs = generation_inputs(model, tokenizer, build_messages([], prompt, system), max_new_tokens)
    with torch.inference_mode():
        output = model.generate(**inputs)
    new_tokens = output[0, inputs["input_ids"].shape[1]:]
    return tokenizer.decode(new_tokens, skip_special_tokens=True).strip()


def chat_loop(
    run_dir: str | Path,
    max_new_tokens: int = 256,
    system: str | None = None,
    input_fn: Callable[[str], str] = input,
    output: TextIO = sys.stdout,
) -> list[Message]:
    """Chat with the run until EOF, Ctrl-C, ``/exit`` or ``/quit``; ``/reset`` forgets the conversation so far.

    Every turn sends the whole conversation, so the model sees earlier exchanges. Returns the final history.
    """
    model, tokenizer = load_for_generation(run_dir)
    system = trained_system_prompt(run_dir) if system is None else system
    output.write(f"Chatting with {RunDir(run_dir).root.resolve().name}. "
                 f"{RESET_COMMAND} clears the history; /exit, Ctrl-D or Ctrl-C ends.\n")
    history: list[Message] = []
    while True:
        try:
            text = input_fn(USER_PROMPT).strip()
        except (EOFError, KeyboardInterrupt):
            output.write("\n")
            break
        if text in EXIT_COMMANDS:
            break
        if text == RESET_COMMAND:
            history.clear()
            output.write("(history cleared)\n")
            continue
        if not text:
            continue
        try:
            answer = stream_reply(model, tokenizer, build_messages(history, text, system), max_new_tokens, output)
        except KeyboardInterrupt:  # Ctrl-C while the model is answering ends the chat too
            output.write("\n")
            break
        history += [{"role": "user", "content": text}, {"role": "assistant", "content": answer}]
    return history


def trained_system_prompt(run_dir: str | Path) -> str | None:
    """`data.system_prompt` of the run: a model tuned under a system prompt answers best when it sees it again."""
    return RunDir(run_dir).config().data.system_prompt


def build_messages(history: list[Message], user_text: str, system: str | None = None) -> list[Message]:
    """The conversation to send: the system message (if any), every earlier exchange, then the new user turn."""
    system_turn = [{"role": "system", "content": system}] if system else []
    return [*system_turn, *history, {"role": "user", "content": user_text}]


def load_for_generation(run_dir: str | Path, use_merged: bool = True):
    """``(model, tokenizer)`` in eval mode: the exported ``merged/`` folder when there is one and it holds the best
    weights (faster: no adapter on the side), else the best weights through tunesmith's loader.

    A stale ``merged/`` (`tunesmith.results.freshness`: training went on after the export) is passed over with a
    warning rather than refused: the answer then comes from the weights that evaluation measured and the summary
    names, which is what the user asked for; re-exporting is only what makes it fast again, so the warning says how.
    """
    from transformers import AutoTokenizer

    run = RunDir(run_dir)
    if not (use_merged and run.merged.is_dir()):
        return load_tuned_model(run.root)
    if export_is_stale(run.best, run.merged):
        log.warning("%s is older than the run's best weights (it trained further since the export): answering from "
                    "the best weights; `tunesmith export %s` brings merged/ up to date", run.merged, run.root)
        return load_tuned_model(run.root)
    return load_model_folder(run.merged, run.config().model), AutoTokenizer.from_pretrained(run.merged)


def generation_inputs(model, tokenizer, messages: list[Message], max_new_tokens: int) -> dict:
    """Keyword arguments of ``model.generate`` for a greedy answer to ``messages``."""
    from transformers import GenerationConfig

    input_ids = torch.tensor([prompt_token_ids(tokenizer, messages)], device=model.device)
    # A fresh config rather than the model's own: shipped sampling settings (temperature, top_p) would make
    # greedy decoding warn, and tunesmith's training turned the KV cache off in the model config.
    config = GenerationConfig(
        max_new_tokens=max_new_tokens, do_sample=False, use_cache=True,
        eos_token_id=stop_token_ids(model, tokenizer), pad_token_id=tokenizer.pad_token_id,
    )
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "generation_config": config}


def stream_reply(model, tokenizer, messages: list[Message], max_new_tokens: int, output: TextIO) -> str:
    """Write the answer to ``output`` as it is generated and return it whole.

    ``generate`` runs in a worker thread and feeds a `TextIteratorStreamer` that this thread drains. A Ctrl-C
    here sets a flag that the worker checks after every token, so it stops promptly and can be joined.
    """
    from transformers import StoppingCriteriaList, TextIteratorStreamer

    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    interrupted = threading.Event()
    inputs = generation_inputs(model, tokenizer, messages, max_new_tokens)
    inputs.update(streamer=streamer, stopping_criteria=StoppingCriteriaList([_StopWhenSet(interrupted)]))
    failures: list[Exception] = []

    def generate() -> None:
        try:
            with torch.inference_mode():
                model.generate(**inputs)
        except Exception as error:  # re-raised in the calling thread below, after the join
            failures.append(error)
            streamer.end()  # unblocks the loop below, which would otherwise wait for text forever

    worker = threading.Thread(target=generate, name="tunesmith-generate", daemon=True)
    worker.start()
    pieces = []
    try:
        for piece in streamer:
            output.write(piece)
            output.flush()
            pieces.append(piece)
    except KeyboardInterrupt:
        interrupted.set()
        raise
    finally:
        worker.join()
    if failures:
        raise failures[0]
    output.write("\n")
    return "".join(pieces).strip()


class _StopWhenSet:
    """A stopping criterion that ends generation once ``event`` is set (transformers calls it every token)."""

    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)
