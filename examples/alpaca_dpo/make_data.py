"""Build the example's data from Stanford Alpaca (`shared/data/alpaca_2k.jsonl`, CC BY-NC 4.0; DATA_LICENSE.md).

    python examples/alpaca_dpo/make_data.py [--alpaca ../shared/data/alpaca_2k.jsonl]

Rows are taken in the file's order, keeping those whose instruction (+ input) and output are short (so the CPU
example stays within its time), then:
- `sft.jsonl`: 440 rows in Alpaca's own format, for the SFT run (its config holds out 40 for the test);
- `pairs_train.jsonl` and `pairs_test.jsonl`: 160 and 40 other prompts, each with Alpaca's reference answer as
  `chosen` and the base model's own greedy answer (SmolLM2-135M-Instruct, at most 96 new tokens, through
  tunesmith's generation) as `rejected`: a style preference for the reference's direct, complete answers over the
  small model's. A prompt the base model answered with the reference answer itself is left out (nothing to
  prefer). No prompt is in two files. Re-running gives the same files (greedy decoding).
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
    train = [pair for pair in kept if pairs.index(pair) < TRAIN_PAIRS]
    test = [pair for pair in kept if pairs.index(pair) >= TRAIN_PAIRS]
    write(HERE / "pairs_train.jsonl", train)
    write(HERE / "pairs_test.jsonl", test)
    print(f"wrote {len(sft)} SFT rows and {len(kept)} pairs ({len(train)} train, {len(test)} test; "
          f"{len(pairs) - len(kept)} left out: the base model's answer was the reference answer)")


if __name__ == "__main__":
    main()
