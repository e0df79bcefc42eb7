"""`tunesmith monitor LOG_DIR`: what a served model met, from the request log of `tunesmith serve`
(`tunesmith.monitor.request_log`), judged against the thresholds of the run's ``monitor:`` section.

Two parts:

- **Traffic** (every request record): requests by model and route, time span and rate, errors (status ≥ 400,
  5xx apart), latency and time-to-first-token percentiles of the answered requests, token totals, feedback and,
  where a shadow model answered too, how often it agreed with the primary.
- **Drift** of the run's model's answered requests against the run's training rows: prompt lengths (PSI over
  the training deciles, KS test), the predicted-label mix (PSI), unfamiliar inputs (no training input reaches
  ``monitor.unfamiliar_similarity``, measured as the data check measures near duplicates) and low-confidence
  classifications. Each part that cannot be measured (no run, no content logged, not a classification run)
  says why; below ``monitor.min_requests`` the figures are shown but not judged.

Every figure above its ``monitor.max_*`` (or below ``min_length_ks_pvalue``) is a breach; `MonitorResult.exit_code`
is 1 when there is one, for cron jobs and CI.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tunesmith.config import MonitorConfig, RunConfig, override_section
from tunesmith.data.check.near_duplicates import near_matches
from tunesmith.data.check.quality import shared_instruction
from tunesmith.data.example import Example
from tunesmith.data.splits import load_run_splits, sample
from tunesmith.data.tokenize import prompt_token_ids
from tunesmith.errors import DataError, ModelError
from tunesmith.models import load_tokenizer
from tunesmith.monitor.drift import label_drift, length_drift, percentiles
from tunesmith.monitor.request_log import LogRecords, ServedRun, answered, parse_time, read_records, served_run
from tunesmith.text import shorten

LATENCY_POINTS = (50, 95, 99)
TTFT_POINTS = (50, 95)
SHADOW_LATENCY_POINTS = (50, 95)
LENGTH_SAMPLE_ROWS = 5_000
"""Training prompts tokenized for the length comparison (a seeded sample): deciles and the KS test are stable
long before that, and tokenizing every row of a large set would make a cron job slow. Unfamiliar inputs are
looked up among every training row."""
SAMPLE_SEED = 0
MIN_RATE_SPAN_S = 60.0
"""A log spanning less time gives no request rate: a burst of requests within a second is no rate per minute."""
EXAMPLES = 5
"""Unfamiliar inputs listed, each cut to `EXAMPLE_CHARS`."""
EXAMPLE_CHARS = 160
NO_MODEL = "(none)"

CHECKS = (
    # (figure, where it is in `MonitorResult.to_dict()`, the setting that bounds it, whether it must stay below)
    ("error_rate", ("traffic", "error_rate"), "max_error_rate", True),
    ("p95_latency_s", ("traffic", "latency_s", "p95"), "max_p95_latency_s", True),
    ("length_psi", ("drift", "prompt_length", "psi"), "max_length_psi", True),
    ("length_ks_pvalue", ("drift", "prompt_length", "ks_pvalue"), "min_length_ks_pvalue", False),
    ("label_psi", ("drift", "labels", "psi"), "max_label_psi", True),
    ("unfamiliar_share", ("drift", "unfamiliar", "share"), "max_unfamiliar_share", True),
    ("low_confidence_share", ("drift", "low_confidence", "share"), "max_low_confidence_share", True),
)


def logged_input(record: dict) -> str | None:
    """What the client asked: the text to classify, else the last user message; None without content logging."""
    if isinstance(record.get("text"), str):
        return record["text"]
    users = [m.get("content") for m in record.get("messages") or [] if isinstance(m, dict) and m.get("role") == "user"]
    return users[-1] if users and isinstance(users[-1], str) else None


# ---- traffic ----------------------------------------------------------------------------------------------------


def traffic(log: LogRecords) -> dict:
    """The traffic figures of every request record (see the module docstring)."""
    requests = log.requests
    total = len(requests)
    times = sorted(parse_time(r["time"]) for r in requests if r.get("time"))
    span = (times[-1] - times[0]).total_seconds() if times else None
    errors = sum(not answered(r) for r in requests)
    server_errors = sum((r.get("status") or 0) >= 500 for r in requests)
    # Percentiles of answered requests only: a request refused at once (a 400 for a bad body) would pull them down.
    ok = [r for r in requests if answered(r)]
    return {
        "requests": total,
        # A request refused before it reached a model (bad JSON, a wrong key) names none.
        "by_model": dict(Counter(str(r.get("model") or NO_MODEL) for r in requests).most_common()),
        "by_route": dict(Counter(str(r.get("route")) for r in requests).most_common()),
        "first": times[0].isoformat() if times else None,
        "last": times[-1].isoformat() if times else None,
        "span_s": span,
        "requests_per_minute": total / (span / 60) if span is not None and span >= MIN_RATE_SPAN_S else None,
        "errors": errors,
        "error_rate": errors / total if total else None,
        "server_errors": server_errors,
        "server_error_rate": server_errors / total if total else None,
        "latency_s": percentiles([r["latency_s"] for r in ok if r.get("latency_s") is not None], LATENCY_POINTS),
        "ttft_s": percentiles([r["ttft_s"] for r in ok if r.get("ttft_s") is not None], TTFT_POINTS),
        "prompt_tokens": sum(r.get("prompt_tokens") or 0 for r in requests),
        "completion_tokens": sum(r.get("completion_tokens") or 0 for r in requests),
        "feedback": feedback_counts(log),
        "shadow": shadow_agreement(log),
    }


def feedback_counts(log: LogRecords) -> dict:
    """Counts over the latest feedback of each request."""
    latest = list(log.feedback.values())
    return {"records": log.feedback_records, "requests": len(latest),
            "up": sum(f.get("rating") == "up" for f in latest), "down": sum(f.get("rating") == "down" for f in latest),
            "corrections": sum(bool(f.get("correction")) for f in latest),
            "labels": sum(f.get("label") is not None for f in latest)}


def shadow_agreement(log: LogRecords) -> dict | None:
    """How often the shadow said what the primary said: the same label (classification) or, for generation, the
    same answer exactly (after trimming whitespace; answers need content logging). None without shadow records."""
    if not log.shadows:
        return None
    labels, answers = [], []
    for request in log.requests:
        shadow = log.shadows.get(request.get("id"))
        if shadow is None or not answered(request):
            continue
        if request.get("label") is not None and shadow.get("label") is not None:
            labels.append(request["label"] == shadow["label"])
        elif isinstance(request.get("answer"), str) and isinstance(shadow.get("answer"), str):
            answers.append(request["answer"].strip() == shadow["answer"].strip())
    latencies = [s["latency_s"] for s in log.shadows.values() if s.get("latency_s") is not None]
    return {"models": sorted({str(s.get("model")) for s in log.shadows.values()}), "answers": len(log.shadows),
            "latency_s": percentiles(latencies, SHADOW_LATENCY_POINTS),
            "labels_compared": len(labels), "label_agreement": sum(labels) / len(labels) if labels else None,
            "answers_compared": len(answers), "answer_agreement": sum(answers) / len(answers) if answers else None}


# ---- drift ------------------------------------------------------------------------------------------------------


@dataclass
class TrainingView:
    """What live traffic is compared with: the run's training rows seen as the server sees requests."""

    prompt_lengths: list[int]
    """Tokens of the templated prompt (system prompt included) of a sample of the training rows."""
    inputs: list[str]
    """The last user message of every training row, without the instruction all rows share."""
    instruction: str
    labels: list[str] | None
    """Each training row's label (classification), else None."""
    label_names: list[str] | None


def training_view(config: RunConfig) -> TrainingView:
    splits = load_run_splits(config.data)
    tokenizer = load_tokenizer(config.model)
    lengths = [len(prompt_token_ids(tokenizer, example.prompt_messages))
               for example in sample(splits.train, LENGTH_SAMPLE_ROWS, SAMPLE_SEED)]
    instruction = shared_instruction(splits.train, splits.format)
    inputs = list(dict.fromkeys(_last_user(example).removeprefix(instruction) for example in splits.train))
    labels = [example.label for example in splits.train] if splits.labels else None
    return TrainingView(lengths, inputs, instruction, labels, splits.labels)


def _last_user(example: Example) -> str:
    return next((m["content"] for m in reversed(example.prompt_messages) if m["role"] == "user"), "")


def load_training(served: ServedRun) -> tuple[TrainingView | None, str]:
    """The run's `TrainingView`, or None and why not (no run; training data that cannot be read, which leaves the
    traffic part standing)."""
    if served.run is None:
        return None, served.missing
    config = served.run.config()
    if config.data.streaming:
        return None, "the run streams its training data (data.streaming), which the monitor does not hold in memory"
    try:
        return training_view(config), ""
    except (DataError, ModelError) as error:
        return None, f"the run's training data or tokenizer cannot be loaded: {error}"


def drift(mine: list[dict], served: ServedRun, training: TrainingView | None, missing: str,
          settings: MonitorConfig) -> dict:
    """The drift figures of ``mine``, the run's model's answered requests (see the module docstring);
    ``missing`` says why there is no ``training``."""
    whose = f"of model {served.model!r}" if served.model else "in the log"
    judged = len(mine) >= settings.min_requests
    result: dict = {
        "run": str(served.run.root) if served.run else None, "model": served.model, "requests": len(mine),
        "judged": judged, "not_judged": None if judged else (
            f"{len(mine)} answered requests {whose}, fewer than monitor.min_requests ({settings.min_requests})"),
    }
    if training is None:
        result.update({part: {"skipped": missing} for part in ("prompt_length", "labels", "unfamiliar")})
    else:
        result["prompt_length"] = prompt_length_drift(mine, training)
        result["labels"] = predicted_label_drift(mine, training)
        result["unfamiliar"] = unfamiliar_inputs(mine, training, settings.unfamiliar_similarity)
    result["low_confidence"] = low_confidence(mine, settings.low_confidence)
    return result


def prompt_length_drift(requests: list[dict], training: TrainingView) -> dict:
    live = [r["prompt_tokens"] for r in requests if r.get("prompt_tokens") is not None]
    if not live:
        return {"skipped": "no request records prompt_tokens"}
    return {**length_drift(training.prompt_lengths, live).to_dict(), "train_rows": len(training.prompt_lengths),
            "live_requests": len(live)}


def predicted_label_drift(requests: list[dict], training: TrainingView) -> dict:
    if training.labels is None:
        return {"skipped": "the run is not a classification run"}
    live = [str(r["label"]) for r in requests if r.get("label") is not None]
    if not live:
        return {"skipped": "no classification requests"}
    return {**label_drift(training.labels, live, training.label_names).to_dict(), "live_requests": len(live)}


def unfamiliar_inputs(requests: list[dict], training: TrainingView, threshold: float) -> dict:
    """The share of logged inputs that no training input reaches ``threshold`` with (word 3-gram Jaccard,
    `near_matches`); an input without words is unfamiliar (it is near nothing)."""
    logged = [(r.get("id"), text) for r in requests if (text := logged_input(r)) is not None]
    if not logged:
        return {"skipped": "the log holds no inputs (the server ran with --no-log-content)"}
    queries = [text.removeprefix(training.instruction) for _, text in logged]
    familiar = near_matches(queries, training.inputs, threshold)
    strange = [(request_id, text) for index, (request_id, text) in enumerate(logged) if index not in familiar]
    examples = [{"id": request_id, "input": shorten(text, EXAMPLE_CHARS)} for request_id, text in strange[:EXAMPLES]]
    return {"share": len(strange) / len(logged), "inputs": len(logged), "unfamiliar": len(strange),
            "threshold": threshold, "examples": examples}


def low_confidence(requests: list[dict], threshold: float) -> dict:
    scored = [r["probability"] for r in requests if r.get("probability") is not None]
    if not scored:
        return {"skipped": "no classification requests with a probability"}
    low = sum(probability < threshold for probability in scored)
    return {"share": low / len(scored), "classified": len(scored), "low": low, "threshold": threshold}


# ---- the whole result -------------------------------------------------------------------------------------------


@dataclass
class Series:
    """Raw values behind the page's figures (not part of the JSON)."""

    latencies: list[float]
    request_times: list[float]
    """Seconds since the first request, one per request."""
    failed_times: list[float]
    live_lengths: list[int]
    train_lengths: list[int]


@dataclass
class MonitorResult:
    log_dir: str
    settings: MonitorConfig
    traffic: dict
    drift: dict
    breaches: list[dict]
    series: Series

    @property
    def exit_code(self) -> int:
        return 1 if self.breaches else 0

    def to_dict(self) -> dict:
        return {"log_dir": self.log_dir, "traffic": self.traffic, "drift": self.drift, "breaches": self.breaches,
                "thresholds": self.settings.model_dump(mode="json"), "exit_code": self.exit_code}


def find_breaches(figures: dict, settings: MonitorConfig) -> list[dict]:
    """Every figure of `CHECKS` beyond its threshold; drift figures only when drift is judged."""
    found = []
    for name, path, setting, must_stay_below in CHECKS:
        threshold = getattr(settings, setting)
        if threshold is None or (path[0] == "drift" and not figures["drift"]["judged"]):
            continue
        value = figures
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None and (value > threshold if must_stay_below else value < threshold):
            found.append({"name": name, "value": value, "threshold": threshold, "setting": f"monitor.{setting}"})
    return found


def monitor_log(log_dir: str | Path, run: str | Path | None = None, overrides: list[str] | None = None,
                ) -> MonitorResult:
    """Read the log in ``log_dir`` (every rotated file, oldest first) and judge it: the run is ``run``, else the
    primary model's run in served.json; thresholds are the run's ``monitor:`` section (the defaults without a
    run) with ``overrides`` (``monitor.key=value``) applied."""
    log = read_records(log_dir)
    served = served_run(log_dir, run)
    settings = override_section("monitor", served.run.config().monitor if served.run else MonitorConfig(),
                                overrides or [])
    training, missing = load_training(served)
    mine = [r for r in log.requests if answered(r) and (served.model is None or r.get("model") == served.model)]
    figures = {"traffic": traffic(log), "drift": drift(mine, served, training, missing, settings)}
    return MonitorResult(str(log_dir), settings, figures["traffic"], figures["drift"],
                         find_breaches(figures, settings), _series(log.requests, mine, training))


def _series(requests: list[dict], mine: list[dict], training: TrainingView | None) -> Series:
    timed = [r for r in requests if r.get("time")]
    start = min((parse_time(r["time"]) for r in timed), default=None)

    def seconds(records: list[dict]) -> list[float]:
        return [(parse_time(r["time"]) - start).total_seconds() for r in records]

    return Series(latencies=[r["latency_s"] for r in requests if answered(r) and r.get("latency_s") is not None],
                  request_times=seconds(timed), failed_times=seconds([r for r in timed if not answered(r)]),
                  live_lengths=[r["prompt_tokens"] for r in mine if r.get("prompt_tokens") is not None],
                  train_lengths=training.prompt_lengths if training else [])
