"""Write this example's data from `examples/sms_spam/train.jsonl`: a spam style held out of training, and a stream
of served messages in which that style appears.

**The held-out style** is adult / dating / chat-line spam: a spam row (label 1) whose text matches `STYLE`
(case-insensitive, word boundaries). Ham rows that match (e.g. "Hey babe") are ordinary ham and stay in the pool.

Every file comes from `examples/sms_spam/train.jsonl`; the gold test file `examples/sms_spam/test.jsonl` is only
read, to keep everything served or labelled away from it: a row whose normalized text is near a test row (word
3-gram Jaccard ≥ 0.85, found as the data check finds leakage: `near_matches`, MinHash candidates confirmed
exactly) goes nowhere.
Exact repeats (same normalized text) are kept once. Then, seeded:

- `round1_train.jsonl` (`TRAIN_ROWS`) and `validation.jsonl` (`VALIDATION_ROWS`): from the pool without the style,
  and also without any row leaked into the test file, so round 1's data check finds no test leakage and any that
  round 2 brings is the labelled rows' doing.
- `stream.jsonl`: what the served model meets, replayed in file order: `part: "normal"` (`NORMAL_ROWS` pool rows
  that are in neither split above, the natural ham/spam mix) then `part: "shifted"` (the style's stream half
  mixed with `SHIFTED_NORMAL_ROWS` more pool rows). Each row keeps its gold `label` and `label_text`: they stand
  in for the annotators (`loop.py` labels the queue from them; a simulation).
- `shifted_slice.jsonl`: the style's other half, never served before labelling, never labelled or trained on:
  the before/after measure of the shift. The style's rows are grouped first (rows with word 3-gram Jaccard ≥
  `GROUP_THRESHOLD` with one another, transitively, are one group: a chat-line advert repeated with another
  phone number is one group) and whole groups are dealt to the stream or the slice, so the slice is not a
  near-copy of a labelled row.

    python examples/sms_loop/prepare.py
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from tunesmith.data.check.near_duplicates import jaccard, near_matches, normalize, shingles

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent / "sms_spam" / "train.jsonl"
GOLD_TEST = HERE.parent / "sms_spam" / "test.jsonl"
SEED = 0
STYLE = re.compile(
    r"\b(chat|chatter|dating|flirt|sexy|horny|singles|xxx|babe|naughty|porn|rude|lonely|lnly|darling|cum|"
    r"filthy|dirty|housewives|gay|saucy|fantasy|fantasies|wet)\b", re.IGNORECASE)
TRAIN_ROWS = 1600
VALIDATION_ROWS = 128
NORMAL_ROWS = 100
SHIFTED_NORMAL_ROWS = 60
LEAK_THRESHOLD = 0.85   # data.check.near_duplicate_threshold's default: what the data check calls leakage
GROUP_THRESHOLD = 0.5   # stricter than the leakage measure: the slice must not be a reworded stream row


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


def is_style(row: dict) -> bool:
    return row["label"] == 1 and STYLE.search(row["text"]) is not None


def unique(rows: list[dict]) -> list[dict]:
    """The first row of each normalized text."""
    seen: set[str] = set()
    kept = []
    for row in rows:
        key = normalize(row["text"])
        if key not in seen:
            seen.add(key)
            kept.append(row)
    return kept


def groups(rows: list[dict], threshold: float) -> list[list[dict]]:
    """Rows joined (transitively) when their word 3-gram Jaccard is ≥ ``threshold``; in first-row order."""
    parent = list(range(len(rows)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    cut = [shingles(row["text"]) for row in rows]
    for i in range(len(rows)):
        for j in range(i):
            if jaccard(cut[i], cut[j]) >= threshold:
                parent[root(i)] = root(j)
    members: dict[int, list[dict]] = {}
    for i, row in enumerate(rows):
        members.setdefault(root(i), []).append(row)
    return list(members.values())


def deal(style_groups: list[list[dict]], rng: random.Random) -> tuple[list[dict], list[dict]]:
    """Shuffled groups dealt in turn to the side with fewer rows: ``(stream half, slice half)``."""
    rng.shuffle(style_groups)
    stream: list[dict] = []
    held: list[dict] = []
    for group in style_groups:
        (stream if len(stream) <= len(held) else held).extend(group)
    return stream, held


def split(source: list[dict], test: list[dict], seed: int = SEED) -> dict[str, list[dict]]:
    """The example's files as ``{name: rows}`` (see the module docstring)."""
    rows = [{"text": row["text"], "label": row["label"], "label_text": row["label_text"]} for row in unique(source)]
    leaked = near_matches([row["text"] for row in rows], [row["text"] for row in test], LEAK_THRESHOLD)
    rows = [row for index, row in enumerate(rows) if index not in leaked]
    rng = random.Random(seed)
    style = [row for row in rows if is_style(row)]
    pool = [row for row in rows if not is_style(row)]
    rng.shuffle(pool)
    stream_style, held = deal(groups(style, GROUP_THRESHOLD), rng)
    cuts = [TRAIN_ROWS, TRAIN_ROWS + VALIDATION_ROWS, TRAIN_ROWS + VALIDATION_ROWS + NORMAL_ROWS]
    train, validation, normal = pool[:cuts[0]], pool[cuts[0]:cuts[1]], pool[cuts[1]:cuts[2]]
    shifted = stream_style + pool[cuts[2]:cuts[2] + SHIFTED_NORMAL_ROWS]
    rng.shuffle(shifted)
    stream = ([dict(row, part="normal", style=False) for row in normal]
              + [dict(row, part="shifted", style=is_style(row)) for row in shifted])
    return {"round1_train": train, "validation": validation, "stream": stream, "shifted_slice": held}


def main() -> None:
    files = split(read_jsonl(SOURCE), read_jsonl(GOLD_TEST))
    for name, rows in files.items():
        write_jsonl(HERE / f"{name}.jsonl", rows)
    spam = {name: sum(row["label"] for row in rows) for name, rows in files.items()}
    style = sum(row["style"] for row in files["stream"])
    print(", ".join(f"{name} {len(rows)} rows ({spam[name]} spam)" for name, rows in files.items())
          + f"; the style: {style} stream rows, {len(files['shifted_slice'])} slice rows")


if __name__ == "__main__":
    main()
