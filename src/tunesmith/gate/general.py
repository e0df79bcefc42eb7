"""General ability kept: the tuned model against its base on general instruction prompts shipped with tunesmith
(`general_prompts.jsonl`, OpenAssistant conversations, Apache-2.0: `general_prompts.LICENSE.md` beside it).

Two measurements on the first `gate.general_rows` prompts, each with a paired bootstrap interval over prompts:

- **Answer loss.** The mean token NLL of the reference replies (loss on the reply tokens only, rendered with the
  run's chat template exactly as training renders a row), for the base and the tuned model. ``kept`` is
  exp(base loss - tuned loss): the base's perplexity over the tuned model's, 1.0 when nothing was lost.
- **Agreement.** The base model's greedy answers (their first `gate.general_max_new_tokens` tokens) are fed to
  the tuned model under teacher forcing; agreement is the share of those tokens that it predicts greedily too.
  ``base_agreement`` is the same share for the base itself: the ceiling (below 1.0 only by the numerical
  difference of cached generation and one forward pass).

For adapter runs the base is the same weights with the adapter disabled (peft's ``disable_adapter``), so no
second model is loaded; a full fine-tune's base is scored first and freed before the tuned model loads. The base's
numbers and greedy answers are kept in the evaluation cache (`tunesmith.evaluate.cache`), keyed like a base-model
evaluation of these prompts plus the settings below, so a second gate of the same base pays only for the tuned
model.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tunesmith.config.gate_section import GateConfig
from tunesmith.config.schema import RunConfig
from tunesmith.config.vocabulary import uses_adapter
from tunesmith.data.example import Example
from tunesmith.data.task import Task
from tunesmith.data.tokenize import TokenizedExample, prompt_token_ids, tokenize_batch
from tunesmith.errors import ConfigError
from tunesmith.evaluate.cache import evaluation_key, key_ingredients, load_evaluation, store_evaluation
from tunesmith.gate.lm_eval import free_model_memory, lm_eval_scores
from tunesmith.gate.stats import bootstrap_interval, paired_bootstrap, ratio_statistics
from tunesmith.json_files import read_jsonl
from tunesmith.models import load_base_model, load_tokenizer, load_tuned_model
from tunesmith.predict import generate_token_ids, supervised_loss_sum
from tunesmith.predict.model_inputs import collate
from tunesmith.run_dir import RunDir

GENERAL_PROMPTS = Path(__file__).with_name("general_prompts.jsonl")
GENERAL_SOURCE = ("tunesmith/gate/general_prompts.jsonl: OpenAssistant conversations (LAION-AI/Open-Assistant, "
                  "en_100_tree), Apache-2.0; see general_prompts.LICENSE.md")
GENERAL_MAX_LENGTH = 256
"""Tokens of a rendered prompt and reply that are scored (the reply's tail is cut): the same for every run, so
runs of one base share the cached base numbers whatever their `data.max_length`. A prompt longer than this leaves
its row out (``rows_too_long``). 256 keeps 197 of the first 200 prompts whole or cut in their reply, at about
two thirds of the tokens 512 costs: this check runs on CPUs too."""
GENERAL_CODE_VERSION = 1
"""Raise whenever the measurement changes: cached base numbers made by the old code then stop matching."""


@dataclass(frozen=True)
class PromptScores:
    """One model's numbers per prompt: the NLL summed over the reference reply's tokens, and how many of the base's
    greedy answer tokens it predicts greedily under teacher forcing."""

    loss_sums: np.ndarray
    agreed: np.ndarray


def general_examples(rows: int) -> list[Example]:
    """The first ``rows`` shipped general prompts (all of them when there are fewer), each a conversation ending
    with its reference reply."""
    records = read_jsonl(GENERAL_PROMPTS)[:rows]
    return [Example(messages=tuple(record["messages"]), location=f"{GENERAL_PROMPTS.name}:{line}")
            for line, record in enumerate(records, start=1)]


def general_ability(config: RunConfig, run: RunDir) -> dict:
    """The general-ability measurement of gate.json's ``general_ability`` check: ``rows`` (prompts scored),
    ``tokens`` (reference reply tokens), ``base_loss``/``tuned_loss`` (mean token NLL), ``loss_delta`` (tuned -
    base) and its interval, ``kept`` (exp(-loss_delta)) and its interval, ``agreement`` and its interval,
    ``agreement_tokens``, ``base_agreement``, ``agreement_threshold`` (`gate.min_general_agreement`),
    ``base_from_cache`` and ``base_cache`` (the cache entry), ``source`` (the prompts and their licence),
    ``rows_requested``, ``rows_too_long``, ``seconds``, and ``lm_eval`` (`tunesmith.gate.lm_eval`, or None without
    `gate.lm_eval_tasks`). The caller judges it against `gate.min_general_kept`."""
    gate = config.gate or GateConfig()
    if gate.general_rows == 0:
        raise ConfigError("gate.general_rows", "is 0, which skips the general-ability check")
    started = time.perf_counter()
    tokenizer = load_tokenizer(config.model)
    examples = general_examples(gate.general_rows)
    loaded = len(examples)
    tokenized = tokenize_batch(examples, tokenizer, GENERAL_MAX_LENGTH)
    scored = [index for index, row in enumerate(tokenized) if row.num_supervised]
    examples, tokenized = [examples[i] for i in scored], [tokenized[i] for i in scored]
    prompts = [prompt_token_ids(tokenizer, example.prompt_messages) for example in examples]

    ingredients = {**key_ingredients(config, tokenizer, examples, Task.of("generation")),
                   "evaluate": {"batch_size": config.evaluate.batch_size}, "max_length": GENERAL_MAX_LENGTH,
                   "general": {"code": GENERAL_CODE_VERSION, "max_new_tokens": gate.general_max_new_tokens}}
    key = evaluation_key(ingredients)
    cached = load_evaluation(key, examples) if config.evaluate.cache_base else None

    adapter = uses_adapter(config.method)
    model = load_tuned_model(run.root)[0] if adapter else None
    if cached is None:
        if adapter:
            with model.disable_adapter():
                base_rows = _base_records(model, tokenizer, examples, tokenized, prompts, gate, config)
        else:
            base, _ = load_base_model(config.model)
            base_rows = _base_records(base, tokenizer, examples, tokenized, prompts, gate, config)
            del base
            free_model_memory()
        metrics = {"loss": _ratio(sum(r["loss_sum"] for r in base_rows), sum(r["tokens"] for r in base_rows))}
        stored = store_evaluation(key, ingredients, metrics, base_rows)
        base_cache = stored.record() if stored else None
    else:
        base_rows, base_cache = cached.rows, cached.record()
    answers = [row["answer_ids"] for row in base_rows]
    if model is None:
        model = load_tuned_model(run.root)[0]
    tuned = PromptScores(_answer_losses(model, tokenized, tokenizer.pad_token_id),
                         _agreed_tokens(model, prompts, answers))
    del model
    free_model_memory()

    base = PromptScores(np.array([row["loss_sum"] for row in base_rows]),
                        np.array([row["agreed"] for row in base_rows]))
    tokens = np.array([row.num_supervised for row in tokenized])
    answer_tokens = np.array([len(answer) for answer in answers])
    result = {
        "rows": len(examples), "rows_requested": gate.general_rows,
        "rows_too_long": loaded - len(examples),
        **_compare(base, tuned, tokens, answer_tokens, config),
        "agreement_threshold": gate.min_general_agreement,
        "base_from_cache": cached is not None, "base_cache": base_cache, "source": GENERAL_SOURCE,
        "lm_eval": lm_eval_scores(config, run) if gate.lm_eval_tasks else None,
    }
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result


def _base_records(model, tokenizer, examples: list[Example], tokenized: list[TokenizedExample],
                  prompts: list[list[int]], gate: GateConfig, config: RunConfig) -> list[dict]:
    """The base model's cache records, one per prompt: the evaluation cache's fields (``prediction`` is the
    greedy answer's text; ``correct`` does not apply) and the numbers the tuned model is compared with."""
    answers = generate_token_ids(model, tokenizer, [example.prompt_messages for example in examples],
                                 gate.general_max_new_tokens, config.evaluate.batch_size)
    losses = _answer_losses(model, tokenized, tokenizer.pad_token_id)
    agreed = _agreed_tokens(model, prompts, answers)
    return [{"location": example.location, "prompt": example.prompt_messages[-1]["content"],
             "reference": example.reference, "prediction": tokenizer.decode(answer, skip_special_tokens=True),
             "correct": None, "loss_sum": float(loss), "tokens": row.num_supervised, "answer_ids": answer,
             "agreed": int(agree)}
            for example, row, answer, loss, agree in zip(examples, tokenized, answers, losses, agreed)]


@torch.inference_mode()
def _answer_losses(model, rows: list[TokenizedExample], pad_token_id: int) -> np.ndarray:
    """Each row's NLL summed over its supervised (reply) tokens, one row per forward pass: no padding, and the
    per-prompt sums the bootstrap resamples."""
    device = next(model.parameters()).device
    sums = []
    for row in rows:
        batch = {name: tensor.to(device) for name, tensor in collate([row], pad_token_id).items()}
        total, _ = supervised_loss_sum(model, batch)
        sums.append(float(total))
    return np.array(sums)


@torch.inference_mode()
def _agreed_tokens(model, prompts: list[list[int]], answers: list[list[int]]) -> np.ndarray:
    """How many tokens of each answer ``model`` predicts greedily when given the prompt and the answer before it
    (teacher forcing): one forward pass over prompt + answer[:-1], whose last len(answer) positions predict it."""
    device = next(model.parameters()).device
    agreed = []
    for prompt, answer in zip(prompts, answers):
        if not answer:
            agreed.append(0)
            continue
        input_ids = torch.tensor([prompt + answer[:-1]], device=device)
        logits = model(input_ids=input_ids, use_cache=False, logits_to_keep=len(answer)).logits
        predicted = logits[0].argmax(dim=-1).cpu()
        agreed.append(int((predicted == torch.tensor(answer)).sum()))
    return np.array(agreed)


def _compare(base: PromptScores, tuned: PromptScores, tokens: np.ndarray, answer_tokens: np.ndarray,
             config: RunConfig) -> dict:
    """The check's numbers, each interval a percentile bootstrap over prompts (`gate.resamples`, `gate.seed`,
    `gate.confidence`): every resample draws prompts with replacement and recomputes the token-weighted ratios."""
    gate = config.gate or GateConfig()
    settings = (gate.confidence, gate.resamples, gate.seed)
    base_loss, tuned_loss = ratio_statistics(base.loss_sums, tokens), ratio_statistics(tuned.loss_sums, tokens)
    delta, delta_interval = paired_bootstrap(tuned_loss, base_loss, *settings)
    delta_low, delta_high = delta_interval or (float("nan"), float("nan"))
    agreement = ratio_statistics(tuned.agreed, answer_tokens)
    return {
        "tokens": int(tokens.sum()), "base_loss": base_loss.metric(), "tuned_loss": tuned_loss.metric(),
        "loss_delta": delta, "loss_delta_interval": [delta_low, delta_high],
        "kept": math.exp(-delta), "kept_interval": [math.exp(-delta_high), math.exp(-delta_low)],
        "agreement": agreement.metric(), "agreement_interval": bootstrap_interval(agreement, *settings),
        "agreement_tokens": int(answer_tokens.sum()),
        "base_agreement": ratio_statistics(base.agreed, answer_tokens).metric(),
    }


def _ratio(top: float, bottom: float) -> float:
    return float(top) / float(bottom) if bottom else float("nan")
