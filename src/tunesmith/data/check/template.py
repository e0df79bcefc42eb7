"""Template round trip: does training see what the chat template renders, and learn exactly the replies?

For one conversation: the pieces `conversation_segments` tokenizes join to the template's own rendering; the
token ids `tokenize_example` makes decode back to that text (plus the EOS tokenization appends to a reply the
template does not end with one); and the supervised tokens decode to each learned assistant reply followed by
the EOS token, in order. Any failure is a ``template`` finding: it means the model would be trained on text
that generation never produces, or taught to stop in the wrong place.
"""

from __future__ import annotations

import sys

from tunesmith.data.check.quality import Finding, finding
from tunesmith.data.example import Example
from tunesmith.data.tokenize import (
    IGNORE_INDEX,
    conversation_segments,
    is_supervised_turn,
    render_conversation,
    tokenize_example,
)
from tunesmith.data.tools import calls_of
from tunesmith.text import preview

SUPERVISED_OPEN, SUPERVISED_CLOSE = "[[", "]]"
"""How the text report marks the supervised spans of the sample."""


def decode(tokenizer, ids: list[int]) -> str:
    # No clean-up: transformers' tokenization-space clean-up rewrites " ," to "," and would hide a mismatch.
    return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def round_trip_problems(example: Example, tokenizer) -> list[str]:
    """What does not survive render → tokenize → decode for ``example``; empty when all of it does."""
    messages = list(example.messages)
    problems = []
    rendered = render_conversation(tokenizer, messages)
    segments = conversation_segments(tokenizer, messages)
    if "".join(text for text, _ in segments) != rendered:
        problems.append("the tokenized pieces do not join to the template's rendering of the conversation")
    eos = tokenizer.eos_token
    expected_text = "".join(text + (eos if supervised and eos not in text else "") for text, supervised in segments)
    item = tokenize_example(example, tokenizer, sys.maxsize, "assistant")
    decoded = decode(tokenizer, item.input_ids)
    if decoded != expected_text:
        at = next((i for i, (a, b) in enumerate(zip(decoded, expected_text)) if a != b),
                  min(len(decoded), len(expected_text)))
        problems.append(f"decoding the tokens does not give back the rendered text (first difference at character "
                        f"{at}: {decoded[at:at + 30]!r} instead of {expected_text[at:at + 30]!r})")
    learned = [decode(tokenizer, ids) for supervised, ids in _runs(item.input_ids, item.labels) if supervised]
    replies = [m["content"] + eos for m in messages if is_supervised_turn(m)]
    if any(m.get("tool_calls") for m in messages):
        # A turn that calls tools is learned as the template writes its calls: its content, each call's name and
        # argument values and the EOS must be inside the turn's supervised span.
        turns = [m for m in messages if is_supervised_turn(m)]
        lacking = [problem for text, m in zip(learned, turns) if (problem := _tool_turn_problem(text, m, eos))]
        if len(learned) != len(turns) or lacking:
            problems.append(f"the supervised tokens are {len(learned)} spans for {len(turns)} learned assistant "
                            f"turns{': ' + '; '.join(lacking) if lacking else ''}")
    elif learned != replies:
        problems.append(f"the supervised tokens decode to {preview(learned, 120)}, not to each assistant reply "
                        f"plus EOS {preview(replies, 120)}")
    return problems


def template_sample(example: Example, split: str, tokenizer, loss_on: str) -> tuple[dict, Finding | None]:
    """The rendered sample with its supervised spans marked, and a ``template`` finding if the round trip fails."""
    item = tokenize_example(example, tokenizer, sys.maxsize, loss_on)
    marked = "".join(
        f"{SUPERVISED_OPEN}{decode(tokenizer, ids)}{SUPERVISED_CLOSE}" if supervised else decode(tokenizer, ids)
        for supervised, ids in _runs(item.input_ids, item.labels)
    )
    problems = round_trip_problems(example, tokenizer)
    sample = {
        "location": example.location, "split": split, "text": marked, "supervised_tokens": item.num_supervised,
        "total_tokens": len(item.input_ids), "round_trip": "ok" if not problems else "; ".join(problems),
    }
    if not problems:
        return sample, None
    return sample, finding(
        "template", split, "the chat template round trip fails: " + "; ".join(problems),
        [(example.location, "")],
    )


def _tool_turn_problem(learned: str, message, eos: str) -> str:
    """"" when the learned span ``learned`` holds the turn's content, calls and EOS, else what it lacks."""
    needles = [message["content"].strip(), *(name for name, _ in calls_of(message)), eos]
    needles += [str(value) for _, arguments in calls_of(message) for value in arguments.values()
                if isinstance(value, (str, int, float))]
    missing = [needle for needle in needles if needle and needle not in learned]
    return f"{preview(learned, 80)} lacks {preview(missing, 80)}" if missing else ""


def _runs(ids: list[int], labels: list[int]) -> list[tuple[bool, list[int]]]:
    """``ids`` cut into maximal runs of supervised / unsupervised tokens."""
    runs: list[tuple[bool, list[int]]] = []
    for token, label in zip(ids, labels):
        supervised = label != IGNORE_INDEX
        if runs and runs[-1][0] == supervised:
            runs[-1][1].append(token)
        else:
            runs.append((supervised, [token]))
    return runs
