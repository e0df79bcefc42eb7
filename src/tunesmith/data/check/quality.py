"""The data check's finders: each looks at the examples of one split (or a held-out split against train) and
returns a `Finding` naming the rows, or None when there is nothing to say.

Decisions a reader may want to know:

- Texts are compared after `near_duplicates.normalize` (case-folded, punctuation removed, whitespace collapsed),
  without system turns, and, for classification and regression rows, without the instruction every row shares:
  a long shared preamble would make every pair of rows look alike.
- ``conflicting_label`` is reported for classification and regression only: the same input with two labels
  (or two targets) cannot both be right. For generation formats several answers to one prompt are legitimate
  (paraphrases, multiple references), so they are not a finding. The rows flagged are those that disagree with
  the most common answer of their input; with no single most common answer every row of the input is flagged.
- ``copied_input``: an answer that equals its user turn, or is contained in it verbatim and is at least half as
  long (in words), compared without case and whitespace differences. Punctuation counts here (a task may be to
  punctuate its input), and a short span of a long prompt is what extractive QA answers look like: no copies.
- Duplicates keep the first row of a group: only the later rows are flagged (and removed by `data clean`).
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from tunesmith.config.vocabulary import LABELED_FORMATS, FindingKind
from tunesmith.data.check.near_duplicates import near_duplicates, near_matches, normalize
from tunesmith.data.example import Example, location_order
from tunesmith.data.tokenize import is_supervised_turn
from tunesmith.text import count_of, normalize_text

MAX_LOCATIONS = 20
"""Rows named per finding; the count always covers all of them."""
MIN_ROWS_FOR_OUTLIERS = 10
"""Quartiles of fewer rows say little about what a normal length is."""
COPY_MIN_SHARE = 0.5
"""An answer found inside its prompt is a copy when it has at least this share of the prompt's words."""

_NON_PRINTABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffd\u200b-\u200f\u2060\ufeff]")
"""C0/C1 control characters except tab, newline and carriage return; the replacement character U+FFFD (left by
a bad decode); zero-width and direction marks (invisible, yet tokens)."""


@dataclass
class Finding:
    kind: FindingKind
    split: str
    """The split it is in, or ``train/test``-style for leakage."""
    count: int
    message: str
    locations: list[str] = field(default_factory=list)
    """Up to `MAX_LOCATIONS` rows, each starting with ``FILE:LINE``."""
    flagged: list[tuple[str, str]] = field(default_factory=list, repr=False)
    """Every flagged row as ``(FILE:LINE, why)``: what `data clean` removes. Not part of the JSON report."""

    @property
    def more(self) -> int:
        """Flagged rows not named in `locations`."""
        return len(self.flagged) - len(self.locations)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "split": self.split, "count": self.count, "message": self.message,
                "locations": self.locations, "more": self.more}


def finding(kind: FindingKind, split: str, message: str, flagged: list[tuple[str, str]],
            count: int | None = None) -> Finding:
    locations = [f"{location} ({why})" if why else location for location, why in flagged[:MAX_LOCATIONS]]
    return Finding(kind, split, len(flagged) if count is None else count, message, locations, flagged)


# ---- texts compared ------------------------------------------------------------------------------------------


def shared_instruction(examples: list[Example], fmt: str) -> str:
    """The instruction every classification/regression row starts with (up to its blank line), else ""."""
    if fmt not in LABELED_FORMATS or len(examples) < 2:
        return ""
    prefix = os.path.commonprefix([_user_text(example) for example in examples])
    cut = prefix.rfind("\n\n")
    return prefix[: cut + 2] if cut >= 0 else ""


def _user_text(example: Example) -> str:
    return next((m["content"] for m in example.messages if m["role"] == "user"), "")


def _strip(text: str, instruction: str) -> str:
    return text[len(instruction):] if instruction and text.startswith(instruction) else text


def comparable_prompt_text(example: Example, instruction: str = "") -> str:
    """The input the model is given, without system turns and the shared instruction."""
    return "\n".join(_strip(m["content"], instruction) for m in example.prompt_messages if m["role"] != "system")


def comparable_row_text(example: Example, instruction: str = "") -> str:
    """The whole row without system turns and the shared instruction (with a pair's rejected answer last)."""
    return "\n".join(_strip(m["content"], instruction) for m in _turns(example) if m["role"] != "system")


def _turns(example: Example) -> tuple:
    """Every turn of a row: a preference pair's rejected answer after its chosen one, so that two pairs that share
    a prompt and a chosen answer but lose to different answers are different rows."""
    return example.messages if example.rejected is None else (*example.messages, example.rejected)


def messages_key(messages) -> tuple[tuple[str, str], ...]:
    # A turn's tool calls are part of what it says: two rows that call with other arguments are not duplicates.
    return tuple((message["role"], message["content"] + json.dumps(message.get("tool_calls") or "", sort_keys=True))
                 for message in messages)


# ---- finders -------------------------------------------------------------------------------------------------


def empty_outputs(name: str, examples: list[Example]) -> Finding | None:
    flagged = [
        (example.location, "")
        for example in examples
        # A turn that calls tools answers with its calls: empty content is its normal shape.
        if any(is_supervised_turn(m) and not m["content"].strip() and not m.get("tool_calls")
               for m in example.messages)
    ]
    if not flagged:
        return None
    return finding("empty_output", name, f"{count_of(len(flagged), 'row')} with an empty or whitespace-only answer",
                   flagged)


def duplicates(name: str, examples: list[Example]) -> Finding | None:
    """Rows that repeat an earlier row exactly (every turn)."""
    first_seen: dict[tuple, str] = {}
    flagged = []
    for example in examples:
        key = messages_key(_turns(example))
        if key in first_seen:
            flagged.append((example.location, f"same as {first_seen[key]}"))
        else:
            first_seen[key] = example.location
    if not flagged:
        return None
    return finding("duplicate", name, f"{count_of(len(flagged), 'row')} repeating an earlier row exactly", flagged)


def near_duplicate_rows(name: str, examples: list[Example], instruction: str, threshold: float) -> Finding | None:
    """Rows whose normalized text is near an earlier kept row; exact duplicates are left to `duplicates`."""
    exact = set()
    seen = set()
    for index, example in enumerate(examples):
        key = messages_key(_turns(example))
        if key in seen:
            exact.add(index)
        seen.add(key)
    found = near_duplicates([comparable_row_text(example, instruction) for example in examples], threshold)
    flagged = [
        (examples[j].location, f"near {examples[i].location}, similarity {similarity:.2f}")
        for j, (i, similarity) in sorted(found.items()) if j not in exact
    ]
    if not flagged:
        return None
    return finding(
        "near_duplicate", name,
        f"{count_of(len(flagged), 'row')} nearly the same as an earlier row (word 3-gram Jaccard ≥ {threshold:g})",
        flagged,
    )


def leakage(train: list[Example], name: str, held_out: list[Example], fmt: str, instruction: str,
            threshold: float) -> Finding | None:
    """Held-out rows whose prompt is in train (exact), or whose prompt or whole row is near a train row."""
    def prompt_key(example: Example) -> tuple:
        # A plain-text row has no prompt (every prompt is the same empty turn), so compare the whole text.
        return messages_key(example.messages if fmt == "text" else example.prompt_messages)

    train_locations: dict[tuple, str] = {}
    for example in train:
        train_locations.setdefault(prompt_key(example), example.location)
    notes: dict[int, str] = {}
    for index, example in enumerate(held_out):
        if prompt_key(example) in train_locations:
            notes[index] = f"same prompt as {train_locations[prompt_key(example)]}"
    exact = len(notes)
    if fmt != "text":
        near_prompts = near_matches([comparable_prompt_text(e, instruction) for e in held_out],
                                    [comparable_prompt_text(e, instruction) for e in train], threshold)
        for index, (match, similarity) in near_prompts.items():
            notes.setdefault(index, f"prompt near {train[match].location}, similarity {similarity:.2f}")
    near_rows = near_matches([comparable_row_text(e, instruction) for e in held_out],
                             [comparable_row_text(e, instruction) for e in train], threshold)
    for index, (match, similarity) in near_rows.items():
        notes.setdefault(index, f"near {train[match].location}, similarity {similarity:.2f}")
    if not notes:
        return None
    flagged = [(held_out[index].location, notes[index]) for index in sorted(notes)]
    return finding(
        "leakage", f"train/{name}",
        f"{count_of(len(flagged), 'row')} of {name} also in train ({exact} with the same prompt, "
        f"{len(flagged) - exact} near a train row): their scores overstate the model", flagged,
    )


def conflicting_labels(name: str, examples: list[Example], fmt: str) -> Finding | None:
    """Rows of the same normalized input whose label (target) disagrees with the input's most common one."""
    if fmt not in LABELED_FORMATS:
        return None
    by_input: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        by_input[normalize("\n".join(m["content"] for m in example.prompt_messages))].append(example)
    flagged = []
    inputs = 0
    for group in by_input.values():
        answers = Counter(example.reference for example in group)
        if len(answers) < 2:
            continue
        inputs += 1
        (top, top_count), (_, second_count) = answers.most_common(2)
        majority = top if top_count > second_count else None
        summary = ", ".join(f"{answer!r} ×{count}" for answer, count in answers.most_common())
        for example in group:
            if example.reference != majority:
                flagged.append((example.location, f"{example.reference!r}; this input has {summary}"))
    if not flagged:
        return None
    flagged.sort(key=lambda item: location_order(item[0]))
    return finding(
        "conflicting_label", name,
        f"{count_of(len(flagged), 'row')} of {inputs} inputs that appear with different labels: a row that "
        "disagrees with its input's most common label (every row when there is none)", flagged,
    )


def label_imbalance(name: str, examples: list[Example], labels: list[str] | None, ratio: float) -> Finding | None:
    if not labels or not examples:
        return None
    counts = Counter(example.label for example in examples)
    top = max(labels, key=lambda label: counts[label])
    rare = [label for label in labels if counts[label] * ratio <= counts[top]]
    if not rare:
        return None
    detail = ", ".join(f"{label!r} {counts[label]}" for label in rare)
    return Finding(
        "label_imbalance", name, sum(counts[label] for label in rare),
        f"{top!r} has {counts[top]} rows, at least {ratio:g}x the rows of {detail}: the model may learn to "
        "ignore the rare labels (add rows, or sample the common one less)",
    )


def copied_inputs(name: str, examples: list[Example], fmt: str) -> Finding | None:
    """Answers that equal (or make up most of) the user turn before them."""
    if fmt in (*LABELED_FORMATS, "text"):
        return None
    flagged = []
    for example in examples:
        user = ""
        for message in example.messages:
            if message["role"] == "user":
                user = _casefold_words(message["content"])
            elif is_supervised_turn(message):
                answer = _casefold_words(message["content"])
                if answer and user and (answer == user or (
                        f" {answer} " in f" {user} " and len(answer.split()) >= COPY_MIN_SHARE * len(user.split()))):
                    why = "equals its prompt" if answer == user else "copied from its prompt"
                    flagged.append((example.location, why))
                    break
    if not flagged:
        return None
    return finding("copied_input", name, f"{count_of(len(flagged), 'row')} whose answer copies the user's text",
                   flagged)


def _casefold_words(text: str) -> str:
    """Case and whitespace normalized, punctuation kept: "add the missing commas" tasks answer with their input
    plus punctuation, and that is the task, not a copy (seen in alpaca)."""
    return normalize_text(text)


def length_outliers(name: str, examples: list[Example], lengths: list[int], factor: float) -> Finding | None:
    """Rows whose token count lies more than ``factor`` interquartile ranges outside the quartiles (Tukey's
    fences). The range counts as at least one token, so a split of equal lengths still has fences."""
    if len(lengths) < MIN_ROWS_FOR_OUTLIERS:
        return None
    q1, q3 = np.percentile(lengths, [25, 75])
    spread = max(q3 - q1, 1.0)
    low, high = q1 - factor * spread, q3 + factor * spread
    flagged = [
        (example.location, f"{length} tokens") for example, length in zip(examples, lengths)
        if length < low or length > high
    ]
    if not flagged:
        return None
    return finding(
        "length_outlier", name,
        f"{count_of(len(flagged), 'row')} with a token count outside [{max(low, 0):g}, {high:g}] ({factor:g} "
        f"interquartile ranges beyond the quartiles {q1:g} and {q3:g})", flagged,
    )


def non_printable(name: str, examples: list[Example]) -> Finding | None:
    flagged = []
    totals: Counter[str] = Counter()
    for example in examples:
        found: Counter[str] = Counter()
        for message in example.messages:
            found.update(_NON_PRINTABLE.findall(message["content"]))
        if found:
            totals.update(found.keys())
            flagged.append((example.location, ", ".join(f"{describe_character(c)} ×{n}" for c, n in found.items())))
    if not flagged:
        return None
    kinds = ", ".join(f"{describe_character(c)} in {count_of(n, 'row')}" for c, n in totals.most_common(5))
    return finding("non_printable", name,
                   f"{count_of(len(flagged), 'row')} with invisible or control characters ({kinds})", flagged)


def describe_character(character: str) -> str:
    """``U+200B ZERO WIDTH SPACE``; control characters, which have no Unicode name, say so."""
    name = unicodedata.name(character, "control character")
    return f"U+{ord(character):04X} {name}"
