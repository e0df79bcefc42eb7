"""How the engine picks each row's next token (`Sampling`, `sample_tokens`), and how sure the model was of it.

A token's log-probability is taken under the model's own distribution (the softmax of its raw logits), before the
request's temperature and top-p reshape it: the confidence of an answer then says what the model believes, not how
it was asked to sample, and a sampled answer is scored as a greedy one would be. An answer's sequence confidence
is the geometric mean of its tokens' probabilities (`tunesmith.predict.calibration.sequence_confidence`). The
most likely tokens a request asks for (``top_logprobs`` of the OpenAI API) come from the same distribution, and only
the rows that ask pay for finding them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Sampling:
    max_tokens: int
    temperature: float = 0.0
    """0 decodes greedily, as evaluation does."""
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    top_logprobs: int | None = None
    """How many of the most likely tokens to report at each step with their log-probabilities; None reports no
    log-probabilities at all, 0 only the chosen token's."""


TopTokens = tuple[list[int], list[float]]
"""The most likely tokens of one step, most likely first, and their log-probabilities."""


def sample_tokens(settings: list[Sampling], generators: list[torch.Generator | None],
                  logits: torch.Tensor) -> tuple[torch.Tensor, list[float], dict[int, TopTokens], dict[int, str]]:
    """One token per row of ``logits`` ([rows, vocabulary]): greedy at temperature 0, else nucleus sampling with the
    row's own generator; each chosen token's log-probability under the model's own distribution; the most likely
    tokens of each row whose ``top_logprobs`` is above 0 (index → `TopTokens`); and the rows that could not be
    sampled (index → why), whose token is a placeholder.

    A row's probabilities that are not all finite numbers (logits that overflow at its temperature, a model that
    gives NaN) fail that row alone: they are checked before ``torch.multinomial``, which refuses them for the whole
    batch (and on CUDA with a device-side assert that breaks every later call)."""
    chosen = logits.argmax(-1)
    usable: dict[int, torch.Tensor] = {}
    for index, sampling in enumerate(settings):
        if sampling.temperature <= 0:
            continue
        probs = torch.softmax(logits[index].float() / sampling.temperature, dim=-1)
        usable[index] = torch.isfinite(probs).all() & (probs.sum() > 0)
        probs = torch.where(usable[index], probs, torch.ones_like(probs))  # stands in, so the draw cannot fail
        if sampling.top_p < 1.0:
            sorted_probs, order = probs.sort(descending=True)
            outside = sorted_probs.cumsum(-1) - sorted_probs > sampling.top_p  # keeps the token that crosses it
            sorted_probs[outside] = 0.0
            probs = torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
        chosen[index] = torch.multinomial(probs, 1, generator=generators[index])[0]
    failed = {}
    if usable:  # one device sync for every sampled row
        for index, ok in zip(usable, torch.stack(list(usable.values())).tolist()):
            if not ok:
                failed[index] = (f"sampling at temperature {settings[index].temperature:g} gave probabilities that "
                                 "are not finite numbers")
    distribution = torch.log_softmax(logits.float(), dim=-1)
    logprobs = distribution.gather(-1, chosen[:, None])[:, 0]
    return chosen, logprobs.tolist(), _top_tokens(settings, distribution), failed


def _top_tokens(settings: list[Sampling], distribution: torch.Tensor) -> dict[int, TopTokens]:
    """One top-k over the rows that ask (the largest k they ask for, each row cut to its own)."""
    asking = [index for index, sampling in enumerate(settings) if sampling.top_logprobs]
    if not asking:
        return {}
    k = min(max(settings[index].top_logprobs for index in asking), distribution.shape[-1])
    values, ids = distribution[asking].topk(k, dim=-1)
    values, ids = values.tolist(), ids.tolist()
    return {index: (ids[row][:settings[index].top_logprobs], values[row][:settings[index].top_logprobs])
            for row, index in enumerate(asking)}
