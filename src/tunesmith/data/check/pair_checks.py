"""The data check of preference pairs (`data.format: preference`): what the finders of single rows cannot see.

Flagged, each as ``FILE:LINE (why)``:

- ``identical_pair``: the chosen and the rejected answer are the same text (surrounding whitespace aside). The
  pair has no preference in it: its loss gradient is zero for DPO and pure SFT for ORPO.
- ``empty_side``: the chosen or the rejected answer is empty or whitespace-only (it replaces ``empty_output``
  for pairs, which would name only the chosen side).
- ``truncated`` (rejected side): a rejected answer cut at ``data.max_length``; the chosen side is counted with the
  split's rows, as for every format.
- ``gold_leakage``: a pair whose prompt is a prompt of the gold test set (`GoldTest`: the ``model.init_from``
  run's test split), compared as the near-duplicate finder normalizes text, without system turns. Why: the run
  re-measures that run's task metrics on those prompts, and a pair trained on one of them overstates what the
  preference step kept.

A validation or test pair whose prompt is in train is the ordinary ``leakage`` finding (`quality.leakage`);
`tunesmith.data.splits.carve` never makes one, since the pairs of one prompt stay in one split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tunesmith.data.check.near_duplicates import normalize
from tunesmith.data.check.quality import Finding, comparable_prompt_text, finding
from tunesmith.data.example import Example
from tunesmith.data.pairs import pair_conversations
from tunesmith.data.splits import load_run_splits
from tunesmith.data.tokenize import tokenize_examples
from tunesmith.run_dir import RunDir
from tunesmith.text import count_of


@dataclass(frozen=True)
class GoldTest:
    """The prompts of a gold test set, normalized, each with the location of its first row."""

    name: str
    """How findings name it, e.g. ``runs/sft test``."""
    prompts: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, name: str, examples: list[Example]) -> GoldTest:
        prompts: dict[str, str] = {}
        for example in examples:
            prompts.setdefault(_prompt_key(example), example.location)
        return cls(name, prompts)


def gold_test_of(config) -> GoldTest | None:
    """The test split of the run ``config.model.init_from`` names (a `RunConfig`), or None without one."""
    init_from = getattr(config.model, "init_from", None)
    if init_from is None:
        return None
    run = RunDir(init_from)
    return GoldTest.of(f"{Path(init_from).name} test", load_run_splits(run.config().data).test)


def pair_findings(name: str, examples: list[Example], tokenizer, max_length: int, loss_on: str,
                  gold: GoldTest | None) -> list[Finding]:
    """The findings of one split's pairs (see the module docstring)."""
    pairs = [example for example in examples if example.rejected is not None]
    found = [identical_pairs(name, pairs), empty_sides(name, pairs),
             truncated_rejected(name, pairs, tokenizer, max_length, loss_on),
             gold_leakage(name, pairs, gold) if gold is not None else None]
    return [item for item in found if item is not None]


def identical_pairs(name: str, pairs: list[Example]) -> Finding | None:
    flagged = [(pair.location, "") for pair in pairs if pair.reference.strip() == pair.rejected["content"].strip()]
    if not flagged:
        return None
    return finding("identical_pair", name, f"{count_of(len(flagged), 'pair')} whose chosen and rejected answers "
                   "are the same: no preference to learn", flagged)


def empty_sides(name: str, pairs: list[Example]) -> Finding | None:
    flagged = []
    for pair in pairs:
        empty = [side for side, text in (("chosen", pair.reference), ("rejected", pair.rejected["content"]))
                 if not text.strip()]
        if empty:
            flagged.append((pair.location, " and ".join(empty) + " empty"))
    if not flagged:
        return None
    return finding("empty_side", name, f"{count_of(len(flagged), 'pair')} with an empty or whitespace-only answer",
                   flagged)


def truncated_rejected(name: str, pairs: list[Example], tokenizer, max_length: int, loss_on: str) -> Finding | None:
    rejected = [pair_conversations(pair)[1] for pair in pairs]
    tokenized, stats = tokenize_examples(rejected, tokenizer, max_length, loss_on)
    if not stats.truncated_rows:
        return None
    flagged = [(row.location, f"{row.supervised_lost} supervised tokens lost" if row.supervised_lost else "")
               for row in tokenized if row.truncated]
    return finding("truncated", name, f"{count_of(len(flagged), 'rejected answer')} longer than max_length "
                   f"{max_length}: {stats.supervised_tokens_lost} supervised tokens cut; raise data.max_length or "
                   "shorten these answers", flagged)


def gold_leakage(name: str, pairs: list[Example], gold: GoldTest) -> Finding | None:
    flagged = [(pair.location, f"prompt of {gold.prompts[key]}") for pair in pairs
               if (key := _prompt_key(pair)) in gold.prompts]
    if not flagged:
        return None
    return finding("gold_leakage", f"{name}/{gold.name}", f"{count_of(len(flagged), 'pair')} of {name} whose prompt "
                   f"is in the gold test set ({gold.name}): the task metrics re-measured there overstate the model",
                   flagged)


def _prompt_key(example: Example) -> str:
    return normalize(comparable_prompt_text(example))
