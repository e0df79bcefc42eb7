"""Write this example's data from the shared XQuAD-en files (`shared/data/squad_qa.jsonl`, `squad_contexts.jsonl`):

- `documents.jsonl`: the 240 paragraphs (`context_id`, `title`, `context`), the retrieval collection;
- `test.jsonl`: one question of every paragraph that has two or more (chosen with a seeded shuffle);
- `train.jsonl`: every other question.

A grouped split: every test question's paragraph has other questions in training (so fine-tuning has seen its
facts, and retrieval has a known gold paragraph), and no test question is trained on. Rows keep `id`,
`question`, `answer` (XQuAD has one answer per question), `context_id` and `title`.

    python examples/squad_rag/prepare.py ../shared/data
"""

from __future__ import annotations

import json
import random
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 0


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


def grouped_split(questions: list[dict], seed: int) -> tuple[list[dict], list[dict]]:
    """``(train, test)``: one seeded question of each paragraph with at least two goes to test."""
    by_paragraph: dict[str, list[int]] = defaultdict(list)
    for index, row in enumerate(questions):
        by_paragraph[row["context_id"]].append(index)
    rng = random.Random(seed)
    held_out = {rng.choice(indices) for _, indices in sorted(by_paragraph.items()) if len(indices) >= 2}
    train = [row for index, row in enumerate(questions) if index not in held_out]
    test = [row for index, row in enumerate(questions) if index in held_out]
    return train, test


def main(shared: Path) -> None:
    questions = [{"id": row["id"], "question": row["question"], "answer": row["answers"][0],
                  "context_id": row["context_id"], "title": row["title"]}
                 for row in read_jsonl(shared / "squad_qa.jsonl")]
    train, test = grouped_split(questions, SEED)
    write_jsonl(HERE / "train.jsonl", train)
    write_jsonl(HERE / "test.jsonl", test)
    write_jsonl(HERE / "documents.jsonl", read_jsonl(shared / "squad_contexts.jsonl"))
    print(f"train {len(train)}, test {len(test)} questions; {len(read_jsonl(shared / 'squad_contexts.jsonl'))} "
          "documents")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else HERE.parents[2] / "shared" / "data"))
