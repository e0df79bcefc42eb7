"""The normalized unit of data every stage after reading works on."""

from __future__ import annotations

from dataclasses import dataclass, field

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": str}; "weight": 0 marks an
# assistant turn that is context only (OpenAI fine-tuning JSONL): no loss on it


def location_order(location: str) -> tuple[str, int]:
    """A ``FILE:LINE`` location as ``(file, line)``, so locations sort by file, then numerically by line."""
    file, _, line = location.rpartition(":")
    return (file, int(line)) if line.isdigit() else (location, 0)


@dataclass(frozen=True)
class Example:
    """One labeled row, normalized to a conversation that ends with the assistant turn to learn.

    ``location`` is ``FILE:LINE`` of the row it came from, so every later finding can point at the input.
    ``label`` is set for classification rows (the label name, equal to the last assistant content);
    ``target`` for regression rows (the number, whose text is the last assistant content); ``rejected`` for
    preference rows (the losing answer; the chosen one is the last assistant turn).
    """

    messages: tuple[Message, ...]
    location: str
    label: str | None = None
    target: float | None = None
    rejected: Message | None = None
    """Preference rows only: the assistant turn that lost to the last turn of ``messages`` (the chosen one), for
    the same prompt (`prompt_messages`)."""
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def prompt_messages(self) -> list[Message]:
        """The conversation up to (not including) the final assistant turn: what the model is given."""
        return list(self.messages[:-1])

    @property
    def reference(self) -> str:
        """The final assistant content: what the model should produce."""
        return self.messages[-1]["content"]


@dataclass
class Splits:
    """Train/validation/test examples plus what the data says about the task."""

    train: list[Example]
    validation: list[Example]
    test: list[Example]
    format: str
    """The detected (or configured) row format, e.g. ``classification``, or `MIXED_FORMAT` for sources of
    different formats."""
    labels: list[str] | None = None
    """Classification label names in a fixed order (``data.label_names`` or sorted as found)."""
    files: dict[str, str] = field(default_factory=dict)
    """Split name → file it was read from (the same file for seeded splits)."""
    sources: dict[str, dict] | None = None
    """With `data.sources`: source path → its format, weight and row counts (read, train before and after
    weighting, validation, test), for the data report."""


MIXED_FORMAT = "mixed"
"""`Splits.format` when the sources of `data.sources` have different formats (evaluated as generation)."""
