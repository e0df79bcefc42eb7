"""Preference rows written from judgments: the one writer of `tunesmith review export --pairs`
(`tunesmith.review.export`) and `tunesmith feedback export --pairs` (`tunesmith.monitor.feedback_pairs`).

A pair is a prompt (a conversation up to the answers), the chosen answer and the rejected one. It is written under
tunesmith's own keys, so `tunesmith data check FILE` and a config without a mapping read it as ``preference`` rows:
``{prompt, chosen, rejected}`` with strings (and a ``system`` field) when the prompt is one user turn, else
``{prompt: [{role, content}, ...], chosen: [{role: assistant, content}], rejected: [...]}``, TRL's conversational
shape. Each pair once; a pair whose answers are the same text teaches nothing and is left out; what is left out is
counted by reason (`PairsWritten.render`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tunesmith.data.example import Message
from tunesmith.json_files import dumps, write_jsonl
from tunesmith.text import count_of

SAME_ANSWERS = "the preferred and the other answer are the same text"
REPEAT = "the same pair as a row already written"


@dataclass
class PairsWritten:
    """What a pair export wrote: ``written`` pairs to ``output_path``, and what it left out, by reason."""

    output_path: str
    written: int
    skipped: Counter = field(default_factory=Counter)

    @property
    def exit_code(self) -> int:
        """1 when no pair was found (nothing was written), else 0."""
        return 0 if self.written else 1

    def render(self, source: str) -> str:
        """The counts as lines; ``source`` names what was left out ("judgment", "request")."""
        if self.written:
            lines = [f"wrote {count_of(self.written, 'pair')} (preference: prompt, chosen, rejected) to "
                     f"{self.output_path}"]
        else:
            lines = ["no pair found: wrote nothing"]
        if self.skipped:
            lines.append(f"left out {count_of(sum(self.skipped.values()), source)}:")
            lines += [f"  {reason}: {count}" for reason, count in self.skipped.most_common()]
        return "\n".join(lines)


class PairRows:
    """The pairs of one export, in the order added, each once; and what was left out, by reason."""

    def __init__(self) -> None:
        self.skipped: Counter = Counter()
        self._rows: dict[str, dict] = {}  # keyed on the row's JSON: a repeat is written once

    def add(self, prompt: list[Message], chosen: str, rejected: str) -> bool:
        """Add the pair (``prompt``: the turns before the answers); False, and counted, when it is left out."""
        if chosen.strip() == rejected.strip():
            self.skip(SAME_ANSWERS)
            return False
        row = preference_row(prompt, chosen, rejected)
        key = dumps(row)
        if key in self._rows:
            self.skip(REPEAT)
            return False
        self._rows[key] = row
        return True

    def skip(self, reason: str, count: int = 1) -> None:
        if count:
            self.skipped[reason] += count

    def write(self, output_path: Path) -> PairsWritten:
        """Write the pairs to ``output_path`` (JSON Lines, whole or not at all); nothing when there is none."""
        if self._rows:
            write_jsonl(output_path, self._rows.values())
        return PairsWritten(str(output_path), len(self._rows), +self.skipped)


def preference_row(prompt: list[Message], chosen: str, rejected: str) -> dict:
    """One ``preference`` row (see the module docstring): strings when the prompt is a user turn (after at most
    one system turn), the conversational shape otherwise."""
    system = [turn["content"] for turn in prompt if turn["role"] == "system"]
    rest = [turn for turn in prompt if turn["role"] != "system"]
    if len(rest) == 1 and rest[0]["role"] == "user" and len(system) <= 1:
        row = {"prompt": rest[0]["content"], "chosen": chosen, "rejected": rejected}
        return {**row, "system": system[0]} if system else row
    return {"prompt": [{"role": turn["role"], "content": turn["content"]} for turn in prompt],
            "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}]}
