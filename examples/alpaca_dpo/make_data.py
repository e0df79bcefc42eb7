"""Build the example's data from Stanford Alpaca (`shared/data/alpaca_2k.jsonl`, CC BY-NC 4.0; DATA_LICENSE.md).

    python examples/alpaca_dpo/make_data.py [--alpaca ../shared/data/alpaca_2k.jsonl]

Rows are taken in the file's order, keeping those whose instruction (+ input) and output are short (so the CPU
example stays within its time), then:
- `sft.jsonl`: 440 rows in Alpaca's own format, for the SFT run (its config holds out 40 for the test);
- `pairs_train.jsonl` and `pairs_test.jsonl`: from 160 and 40 other prompts, each with Alpaca's reference answer
  as `chosen` and the base model's own greedy answer (SmolLM2-135M-Instruct, at most 96 new tokens, through
  tunesmith's generation) as `rejected`: a style preference for the reference's direct, complete answers over the
  small model's. A prompt the base model answered with the reference answer itself is left out (nothing to
  prefer). No prompt is in two files. Re-running gives the same files (greedy decoding).

The training pairs are length-balanced: the small model's answers are longer than the references in most pairs,
so a model trained on all of them learns that the preferred answer is the shorter one and shortens every answer
(on this data BLEU fell from 10.1 to 3.8). Kept are the pairs whose chosen answer is at least as long as the
rejected one, and as many of the others, those closest in length: the chosen answer is the longer one in half the
pairs, and length no longer tells them apart. `pairs_train_all.jsonl` keeps every candidate pair (to train on
them all: `--set data.train=pairs_train_all.jsonl`). The test pairs are all kept (they measure the preference as
it is).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("TUNESMITH_SHARED_DATA", HERE.parents[2] / "shared" / "data"))
"""The shared data sets (`../shared/data` beside the repository; the variable points elsewhere)."""
SFT_ROWS, TRAIN_PAIRS, TEST_PAIRS = 440, 160, 40
MAX_PROMPT_CHARS, MAX_OUTPUT_CHARS = 300, 400


def short_rows(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [row for row in rows if row["output"].strip()
            and len(row["instruction"]) + len(row["input"]) <= MAX_PROMPT_CHARS
            and len(row["output"]) <= MAX_OUTPUT_CHARS]


def prompt_of(row: dict) -> str:
    # Alpaca's own rendering of an instruction with an input, as tunesmith's alpaca format writes it.
    return f"{row['instruction']}\n\n{row['input']}" if row["input"].strip() else row["instruction"]


def base_answers(prompts: list[str]) -> list[str]:
    from tunesmith.config.schema import ModelConfig
    from tunesmith.models.loading import load_base_model
    from tunesmith.predict.generation import generate

    model, tokenizer = load_base_model(ModelConfig())
    return generate(model, tokenizer, [[{"role": "user", "content": p}] for p in prompts], max_new_tokens=96,
                    batch_size=16)


def length_balanced(pairs: list[dict]) -> list[dict]:
    """The pairs whose chosen answer is at least as long as the rejected one, and as many others, those with the
    smallest rejected / chosen length ratio; in their original order."""
    def ratio(pair: dict) -> float:
        return len(pair["rejected"]) / max(1, len(pair["chosen"]))

    longer = [i for i, pair in enumerate(pairs) if ratio(pair) <= 1]
    shorter = sorted((i for i, pair in enumerate(pairs) if ratio(pair) > 1), key=lambda i: ratio(pairs[i]))
    kept = set(longer) | set(shorter[: len(longer)])
    return [pair for i, pair in enumerate(pairs) if i in kept]


def write(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alpaca", type=Path, default=SHARED / "alpaca_2k.jsonl")
    args = parser.parse_args()
    rows = short_rows(args.alpaca)
    needed = SFT_ROWS + TRAIN_PAIRS + TEST_PAIRS
    if len(rows) < needed:
        raise SystemExit(f"{args.alpaca}: {len(rows)} short rows, {needed} needed")
    sft, pair_rows = rows[:SFT_ROWS], rows[SFT_ROWS:needed]
    write(HERE / "sft.jsonl", [{key: row[key] for key in ("instruction", "input", "output", "source_index")}
                               for row in sft])
    prompts = [prompt_of(row) for row in pair_rows]
    rejected = base_answers(prompts)
    pairs = [{"prompt": prompt, "chosen": row["output"], "rejected": answer.strip(),
              "source_index": row["source_index"]}
             for prompt, row, answer in zip(prompts, pair_rows, rejected)]
    # Where the base model already wrote the reference answer there is nothing to prefer: the pair is left out.
    kept = [pair for pair in pairs if pair["rejected"] and pair["rejected"] != pair["chosen"].strip()]
    candidates = [pair for pair in kept if pairs.index(pair) < TRAIN_PAIRS]
    train = length_balanced(candidates)
    test = [pair for pair in kept if pairs.index(pair) >= TRAIN_PAIRS]
    write(HERE / "pairs_train_all.jsonl", candidates)
    write(HERE / "pairs_train.jsonl", train)
    write(HERE / "pairs_test.jsonl", test)
    print(f"wrote {len(sft)} SFT rows, {len(train)} training pairs (length-balanced, of {len(candidates)}) and "
          f"{len(test)} test pairs; {len(pairs) - len(kept)} left out: the base model's answer was the reference "
          "answer")


if __name__ == "__main__":
    main()
