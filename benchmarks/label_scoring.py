"""Label-likelihood scoring speed: the prompt run once per row and shared by every label (tunesmith's
`score_labels`) against one forward pass over prompt + label for each label.

    python benchmarks/label_scoring.py [--rows 200] [--repeats 3] [--batch-size 16] [--json]

Rows: the first N test rows of the demo (`examples/sms_spam/config.yaml`: its system prompt, empty instruction and
labels ham/spam), scored by the default model (SmolLM2-135M-Instruct, fp32 on the CPU) in the demo's
length-sorted, left-padded batches of `evaluate.batch_size`.

Arms, in one process on the same model (reading the rows and loading the model are not timed), taking turns batch
by batch, the order rotating from batch to batch and between repeats: this machine is shared, and a burst of
someone else's load then slows every arm alike. A run is each arm's total over the batches; medians of `--repeats`
runs, and the median over every batch of the ratios between arms timed back to back (steadier under load). One
prompt goes through the model before timing, so one-time costs of the first forward are left out:
- shared: `tunesmith.predict.labels.score_labels`: one forward over each batch's prompts with the KV cache
  kept; the prompt's last logits score every label's first token, and each label's remaining tokens run on top
  of the cache (then cropped back to the prompt).
- per_label: for each label, one forward over every row's prompt + label tokens, scoring the label tokens (what
  scoring costs without sharing the prompt).
- one_pass (a candidate, not in tunesmith): every label's tokens in the prompt's own forward, side by side after
  the prompt under a tree-shaped 4D attention mask, so a batch takes one forward instead of 1 + labels.
- prompt_only: the prompt forward alone, last position's logits only: what any way of scoring must pay, so
  shared minus prompt_only is all that sharing the prompt differently could still save.
Also: per arm, the largest difference from the shared scores and how many predicted labels differ.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = ROOT / "examples" / "sms_spam" / "config.yaml"
ARMS = ("shared", "per_label", "one_pass", "prompt_only")


def per_label_scores(model, tokenizer, prompts, labels, batch_size: int) -> list[list[float]]:
    """`score_labels` without sharing: one padded forward per (batch, label) over prompt + label tokens."""
    import torch

    from tunesmith.data.tokenize import prompt_token_ids
    from tunesmith.predict.generation import left_padding, length_sorted_batches
    from tunesmith.predict.labels import label_token_ids

    prompt_ids = [prompt_token_ids(tokenizer, prompt) for prompt in prompts]
    scores = [[0.0] * len(labels) for _ in prompts]
    for batch in length_sorted_batches([len(ids) for ids in prompt_ids], batch_size):
        for column, label in enumerate(labels):
            reply = label_token_ids(tokenizer, prompts[batch[0]], label)
            with left_padding(tokenizer):
                padded = tokenizer.pad({"input_ids": [prompt_ids[i] + reply for i in batch]}, padding=True,
                                       return_tensors="pt")
            mask = padded["attention_mask"]
            with torch.inference_mode():
                # Left padding ends every row with its reply: the last len(reply) + 1 positions predict it.
                logits = model(input_ids=padded["input_ids"], attention_mask=mask,
                               position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                               logits_to_keep=len(reply) + 1).logits[:, :-1]
                logprobs = torch.log_softmax(logits.float(), dim=-1)
                targets = torch.tensor(reply).expand(len(batch), -1).unsqueeze(-1)
                totals = logprobs.gather(-1, targets).squeeze(-1).sum(-1)
            for index, total in zip(batch, totals.tolist()):
                scores[index][column] = total
    return scores


def one_pass_scores(model, tokenizer, prompts, labels, batch_size: int) -> list[list[float]]:
    """A candidate: every label's tokens in the prompt's own forward. The labels' tokens follow the prompt side by
    side, each seeing the prompt and its own earlier tokens only (a tree-shaped 4D mask, additive so that eager
    attention reads it right too), positions continuing from the prompt; one forward per batch."""
    import torch

    from tunesmith.data.tokenize import prompt_token_ids
    from tunesmith.predict.generation import left_padding, length_sorted_batches
    from tunesmith.predict.labels import label_token_ids

    prompt_ids = [prompt_token_ids(tokenizer, prompt) for prompt in prompts]
    scores = [[0.0] * len(labels) for _ in prompts]
    for batch in length_sorted_batches([len(ids) for ids in prompt_ids], batch_size):
        replies = [label_token_ids(tokenizer, prompts[batch[0]], label) for label in labels]
        fed = [reply[:-1] for reply in replies]  # a reply's last token is only predicted, never fed
        with left_padding(tokenizer):
            padded = tokenizer.pad({"input_ids": [prompt_ids[i] for i in batch]}, padding=True, return_tensors="pt")
        mask = padded["attention_mask"].bool()
        rows, length = mask.shape
        branches = torch.tensor([token for tokens in fed for token in tokens], dtype=torch.long)
        total = length + len(branches)
        offsets = torch.tensor([offset for tokens in fed for offset in range(len(tokens))], dtype=torch.long)
        position_ids = torch.cat([(mask.long().cumsum(-1) - 1).clamp(min=0), mask.sum(-1, keepdim=True) + offsets],
                                 dim=1)
        allowed = torch.zeros(rows, total, total, dtype=torch.bool)
        allowed[:, :length, :length] = torch.tril(torch.ones(length, length, dtype=torch.bool)) & mask[:, None, :]
        allowed[:, length:, :length] = mask[:, None, :]
        start = length
        for tokens in fed:
            allowed[:, start:start + len(tokens), start:start + len(tokens)] = torch.tril(
                torch.ones(len(tokens), len(tokens), dtype=torch.bool))
            start += len(tokens)
        allowed |= torch.eye(total, dtype=torch.bool)  # a padding row attends to itself: no NaN from an empty row
        dtype = next(model.parameters()).dtype
        additive = torch.zeros(rows, 1, total, total, dtype=dtype)
        additive.masked_fill_(~allowed[:, None], torch.finfo(dtype).min)
        with torch.inference_mode():
            logits = model(input_ids=torch.cat([padded["input_ids"], branches.expand(rows, -1)], dim=1),
                           attention_mask=additive, position_ids=position_ids,
                           logits_to_keep=total - length + 1).logits
        logprobs = torch.log_softmax(logits.float(), dim=-1)  # position 0: the prompt's last token
        start = 1
        for column, reply in enumerate(replies):
            positions = [0, *range(start, start + len(reply) - 1)]
            targets = torch.tensor(reply).expand(rows, -1).unsqueeze(-1)
            totals = logprobs[:, positions].gather(-1, targets).squeeze(-1).sum(-1)
            for index, value in zip(batch, totals.tolist()):
                scores[index][column] = value
            start += len(reply) - 1
    return scores


def prompt_only(model, tokenizer, prompts, batch_size: int) -> None:
    """The prompt forward of `score_labels` alone (no KV cache kept, no label scored)."""
    import torch

    from tunesmith.data.tokenize import prompt_token_ids
    from tunesmith.predict.generation import left_padding, length_sorted_batches

    prompt_ids = [prompt_token_ids(tokenizer, prompt) for prompt in prompts]
    for batch in length_sorted_batches([len(ids) for ids in prompt_ids], batch_size):
        with left_padding(tokenizer):
            padded = tokenizer.pad({"input_ids": [prompt_ids[i] for i in batch]}, padding=True, return_tensors="pt")
        mask = padded["attention_mask"]
        with torch.inference_mode():
            model(input_ids=padded["input_ids"], attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                  logits_to_keep=1)


def compare(rows: int, repeats: int, batch_size: int) -> dict:
    import torch

    from tunesmith.config import load_config
    from tunesmith.data.splits import load_run_splits
    from tunesmith.data.tokenize import prompt_token_ids
    from tunesmith.models import load_base_model
    from tunesmith.predict.generation import length_sorted_batches
    from tunesmith.predict.labels import score_labels

    config = load_config(DEMO_CONFIG, [f"data.max_eval_rows={rows}"])
    splits = load_run_splits(config.data)
    prompts, labels = [example.prompt_messages for example in splits.test], list(splits.labels)
    model, tokenizer = load_base_model(config.model)
    lengths = [len(prompt_token_ids(tokenizer, prompt)) for prompt in prompts]
    batches = [[prompts[i] for i in batch] for batch in length_sorted_batches(lengths, batch_size)]
    arms = {
        "shared": lambda batch: score_labels(model, tokenizer, batch, labels, batch_size),
        "per_label": lambda batch: per_label_scores(model, tokenizer, batch, labels, batch_size),
        "one_pass": lambda batch: one_pass_scores(model, tokenizer, batch, labels, batch_size),
        "prompt_only": lambda batch: prompt_only(model, tokenizer, batch, batch_size),
    }
    prompt_only(model, tokenizer, prompts[:1], 1)  # warm-up: one-time costs of the first forward are not timed
    totals = {arm: [] for arm in ARMS}
    batch_ratios = {"per_label_over_shared": [], "shared_over_one_pass": [], "shared_over_prompt_only": []}
    scores = {"shared": [], "per_label": [], "one_pass": []}
    for repeat in range(repeats):
        seconds = dict.fromkeys(ARMS, 0.0)
        for number, batch in enumerate(batches):
            batch_seconds = {}
            for arm in ARMS[(repeat + number) % len(ARMS):] + ARMS[:(repeat + number) % len(ARMS)]:
                started = time.perf_counter()
                result = arms[arm](batch)
                batch_seconds[arm] = time.perf_counter() - started
                if repeat == 0 and arm in scores:
                    scores[arm] += result
            batch_ratios["per_label_over_shared"].append(batch_seconds["per_label"] / batch_seconds["shared"])
            batch_ratios["shared_over_one_pass"].append(batch_seconds["shared"] / batch_seconds["one_pass"])
            batch_ratios["shared_over_prompt_only"].append(batch_seconds["shared"] / batch_seconds["prompt_only"])
            for arm in ARMS:
                seconds[arm] += batch_seconds[arm]
        for arm in ARMS:
            totals[arm].append(seconds[arm])
    best = {arm: [max(range(len(labels)), key=row.__getitem__) for row in rows] for arm, rows in scores.items()}
    against_shared = {
        arm: {"max_score_difference": max(abs(a - b) for row_a, row_b in zip(scores["shared"], scores[arm])
                                          for a, b in zip(row_a, row_b)),
              "predictions_differing": sum(a != b for a, b in zip(best["shared"], best[arm]))}
        for arm in ("per_label", "one_pass")
    }
    medians = {arm: statistics.median(values) for arm, values in totals.items()}
    return {
        "rows": len(prompts), "labels": labels, "batch_size": batch_size, "repeats": repeats,
        "threads": torch.get_num_threads(), "prompt_tokens": sum(lengths), "median_seconds": medians,
        "runs_seconds": {arm: [round(value, 2) for value in values] for arm, values in totals.items()},
        "per_label_over_shared": medians["per_label"] / medians["shared"],
        "shared_over_one_pass": medians["shared"] / medians["one_pass"],
        "shared_over_prompt_only": medians["shared"] / medians["prompt_only"],
        "median_batch_ratios": {name: statistics.median(values) for name, values in batch_ratios.items()},
        "against_shared": against_shared,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200, help="test rows to score (the first ones in file order)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16, help="rows per batch (the demo's evaluate.batch_size)")
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args()
    result = compare(args.rows, args.repeats, args.batch_size)
    if not args.json:
        print(f"{result['rows']} rows, labels {result['labels']}, batch {result['batch_size']}, "
              f"{result['threads']} threads, medians of {result['repeats']}:")
        for arm in ARMS:
            print(f"  {arm:12s} {result['median_seconds'][arm]:7.2f} s   runs {result['runs_seconds'][arm]}")
        batch = result["median_batch_ratios"]
        for name in batch:
            print(f"  {name.replace('_over_', ' / ')}: x{result[name]:.2f} (median of batches x{batch[name]:.2f})")
        for arm, difference in result["against_shared"].items():
            print(f"  {arm} vs shared: largest score difference {difference['max_score_difference']:.2e}, "
                  f"{difference['predictions_differing']} predictions differ")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
