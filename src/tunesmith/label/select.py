"""Which served requests are worth a person's label: `select_requests` picks them from a request log for a run.

Candidates are the requests the run's model answered with their content logged, that nobody has labelled or
corrected through ``/v1/feedback`` yet. They are ranked by a strategy:

- ``uncertainty``: the least confident first (``confidence``, else ``probability`` for logs written before
  calibrated confidence);
- ``novelty``: the most novel first (``novelty``: distance to the nearest training input);
- ``mixed``: the two rankings taken in turn, a request picked once.

Going down the ranking, a request is kept unless it is a near-copy of one kept already: the same normalized text,
or word 3-gram Jaccard similarity at or above the run's ``data.check.near_duplicate_threshold`` (the data check's
own measure, `tunesmith.data.check.near_duplicates`). Labeling ten copies of one message teaches the model once.
Every request left out is counted under the reason it was left out.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from itertools import chain, zip_longest
from pathlib import Path

from tunesmith.config.vocabulary import task_of
from tunesmith.data.check.near_duplicates import jaccard, normalize, shingles
from tunesmith.errors import ConfigError, RunError
from tunesmith.monitor.request_log import LogRecords, answered, read_records, refusal, served_run
from tunesmith.monitor.training_rows import run_format
from tunesmith.run_dir import RunDir
from tunesmith.text import is_unicode

SIGNALS = {"uncertainty": ("confidence",), "novelty": ("novelty",), "mixed": ("confidence", "novelty")}
"""The request field each strategy ranks by."""
STRATEGIES = tuple(SIGNALS)
DEFAULT_BUDGET = 100

REFUSED = "refused before reaching a model, or asked for no answer"
FAILED = "the request failed"
OTHER_MODEL = "answered by another served model"
NO_CONTENT = "its content was not logged (--no-log-content)"
HAS_FEEDBACK = "a user already gave its label or correction (feedback export writes it)"
NEAR_COPY = "a near-copy of a request picked already"
OVER_BUDGET = "ranked below the budget"
NO_ID = "it has no request id"
NOT_UNICODE = "its text is not valid Unicode (a lone surrogate)"

_NO_SIGNAL = {
    "confidence": "serve the run after evaluating it, so the log carries confidence, or use --strategy novelty",
    "novelty": "serve the run after evaluating it with the rag extra installed (pip install 'tunesmith[rag]'), "
               "so the log carries novelty, or use --strategy uncertainty",
}


@dataclass(frozen=True)
class Candidate:
    """A request that may be labelled, with what the queue shows of it."""

    request_id: str
    input: str
    messages: list[dict] | None
    prediction: str | None
    confidence: float | None
    novelty: float | None

    @property
    def content(self) -> str:
        """The text near-copies are judged on: the whole conversation's text."""
        if self.messages:
            return "\n".join(str(turn.get("content")) for turn in self.messages if isinstance(turn, dict))
        return self.input


@dataclass(frozen=True)
class Picked:
    """A request picked for labeling and why."""

    candidate: Candidate
    reason: str


@dataclass
class Selection:
    """What `select_requests` picked, the run it picked for, and what it left out by reason."""

    run: RunDir
    task: str
    format: str
    labels: list[str] | None
    picked: list[Picked]
    requests: int
    left_out: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    """Why a field some requests lack left them out of a ranking (counts of the whole log)."""


def select_requests(log_dir: str | Path, run: str | Path | None = None, strategy: str = "uncertainty",
                    budget: int = DEFAULT_BUDGET) -> Selection:
    """Pick at most ``budget`` requests of the log at ``log_dir`` for the run ``run`` (else the primary model's run
    in served.json) by ``strategy`` (module docstring). A one-line error when no request qualifies."""
    if strategy not in STRATEGIES:
        raise ConfigError("--strategy", f"{strategy!r} is not one of {', '.join(STRATEGIES)}")
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ConfigError("--budget", f"must be a whole number of requests, 1 or more; got {budget!r}")
    served = served_run(log_dir, run)
    if served.run is None:
        raise RunError(f"label create needs the run whose model answered the requests: {served.missing}")
    config = served.run.config()
    fmt, labels = run_format(served.run, config)
    task = task_of(config.evaluate.task, fmt)
    if task == "classification" and not labels:
        labels = config.data.label_names
    log = read_records(log_dir)
    left_out: Counter = Counter()
    candidates = _candidates(log, served.model, left_out)
    if not candidates:
        reasons = "; ".join(f"{reason}: {count}" for reason, count in left_out.most_common())
        raise RunError(f"no request of {log_dir} can be labelled for run {served.run.root} "
                       f"({len(log.requests)} requests; {reasons or 'the log has none'})")
    notes: list[str] = []
    signals = SIGNALS[strategy]
    order = _interleaved([_ranking(candidates, signal, notes) for signal in signals])
    left_out[f"it carries no {' and no '.join(signals)}"] += len(candidates) - len(order)
    picked = _pick(order, config.data.check.near_duplicate_threshold, budget, left_out)
    return Selection(served.run, task, fmt, labels, picked, len(log.requests), +left_out, notes)


def _candidates(log: LogRecords, model: str | None, left_out: Counter) -> list[Candidate]:
    """The requests of the run's model that can be labelled; the others counted in ``left_out``."""
    found = []
    for request in log.requests:
        reason = _unusable(request, model, log.feedback.get(request.get("id")))
        if reason is not None:
            left_out[reason] += 1
            continue
        messages = request.get("messages") if isinstance(request.get("messages"), list) else None
        text = request.get("text")
        found.append(Candidate(
            request_id=str(request["id"]), input=text if isinstance(text, str) else _last_user_turn(messages),
            messages=None if isinstance(text, str) else messages,
            prediction=request.get("label") if request.get("label") is not None else request.get("answer"),
            confidence=_number(request.get("confidence")) if _number(request.get("confidence")) is not None
            else _number(request.get("probability")),
            novelty=_number(request.get("novelty"))))
    return found


def _unusable(request: dict, model: str | None, feedback: dict | None) -> str | None:
    if refusal(request) is not None:
        return REFUSED
    if not answered(request):
        return FAILED
    if model is not None and request.get("model") != model:
        return OTHER_MODEL
    if not request.get("id"):
        return NO_ID
    if not isinstance(request.get("text"), str) and not _last_user_turn(request.get("messages")):
        return NO_CONTENT
    if feedback and (feedback.get("label") is not None or feedback.get("correction")):
        return HAS_FEEDBACK
    if not is_unicode(json.dumps([request.get("text"), request.get("messages"), request.get("answer"),
                                  request.get("label")], ensure_ascii=False)):
        return NOT_UNICODE
    return None


def _last_user_turn(messages) -> str:
    if not isinstance(messages, list):
        return ""
    users = [turn.get("content") for turn in messages if isinstance(turn, dict) and turn.get("role") == "user"]
    return users[-1] if users and isinstance(users[-1], str) else ""


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _ranking(candidates: list[Candidate], signal: str, notes: list[str]) -> list[Picked]:
    """``candidates`` that carry ``signal``, best first (least confident / most novel; log order on a tie)."""
    carrying = [c for c in candidates if getattr(c, signal) is not None]
    if not carrying:
        raise RunError(f"none of the {len(candidates)} requests that could be labelled carries {signal}: "
                       f"{_NO_SIGNAL[signal]}")
    lacking = len(candidates) - len(carrying)
    if lacking:
        notes.append(f"{lacking} of {len(candidates)} requests carry no {signal}, so the {signal} ranking leaves "
                     "them out")
    if signal == "confidence":
        ranked = sorted(carrying, key=lambda c: c.confidence)
        return [Picked(c, f"least confident: {c.confidence:.3f}") for c in ranked]
    ranked = sorted(carrying, key=lambda c: -c.novelty)
    return [Picked(c, f"most novel: {c.novelty:.3f}") for c in ranked]


def _interleaved(rankings: list[list[Picked]]) -> list[Picked]:
    """The rankings taken in turn, each request once (where it first comes)."""
    seen: set[str] = set()
    order = []
    for entry in chain.from_iterable(zip_longest(*rankings)):
        if entry is not None and entry.candidate.request_id not in seen:
            seen.add(entry.candidate.request_id)
            order.append(entry)
    return order


def _pick(order: list[Picked], threshold: float, budget: int, left_out: Counter) -> list[Picked]:
    """The first ``budget`` of ``order`` that are no near-copy of an earlier pick (exact Jaccard against each pick:
    a budget is small, so this stays fast)."""
    picked: list[Picked] = []
    kept_texts: set[str] = set()
    kept_shingles: list[set] = []
    for entry in order:
        if len(picked) == budget:
            left_out[OVER_BUDGET] += 1
            continue
        text = normalize(entry.candidate.content)
        grams = shingles(entry.candidate.content)
        if text in kept_texts or any(jaccard(grams, other) >= threshold for other in kept_shingles):
            left_out[NEAR_COPY] += 1
            continue
        picked.append(entry)
        kept_texts.add(text)
        kept_shingles.append(grams)
    return picked
