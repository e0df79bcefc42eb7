"""What the server's routes share: its settings, the loaded models and engine, the novelty worker, the request log
and the metrics."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tunesmith.monitor.request_log import RequestLog, read_log, write_manifest
from tunesmith.serve.engine import Engine
from tunesmith.serve.novelty_worker import NoveltyWorker
from tunesmith.serve.openai_api import ApiError, new_id
from tunesmith.serve.prometheus import ServerMetrics
from tunesmith.serve.served import Served, ServedModel

LOG_FOLDER = "serve_logs"
"""The request log's folder in the first run's folder (or the current one, serving a plain model)."""
MAX_LOGGED_ROUTE = 200
"""A refused request's path is logged up to this many characters (it is whatever the client sent)."""


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    """Names the server answers to besides loopback and ``host`` (`tunesmith.web.AllowedHosts`)."""
    log_dir: Path | None = None
    log_content: bool = True
    log_max_bytes: int = 64 * 1024 * 1024
    max_prompt_tokens: int = 4096
    """Longer prompts are refused (400); the model's context length caps it too."""
    max_tokens: int = 512
    """The most tokens a request may ask for, and what it gets when it asks for none."""
    request_timeout_s: float = 120.0
    max_batch: int = 32
    batch_window_s: float = 0.005


class ServerState:
    """What the routes share: the log (open from the start, so requests refused while the model loads are logged
    too), the metrics, and the loaded models, engine and novelty worker once loading finished."""

    def __init__(self, settings: ServerSettings, metrics: ServerMetrics):
        self.settings, self.metrics = settings, metrics
        self.served: Served | None = None
        self.engine: Engine | None = None
        self.novelty: NoveltyWorker | None = None
        self.request_log: RequestLog | None = None
        self.load_error: str | None = None
        self.known_ids: dict[str, str] = {}
        """The id of every answered request → the served name that answered it (feedback is checked against it)."""

    def open_log(self) -> None:
        settings = self.settings
        self.request_log = RequestLog(settings.log_dir or Path(LOG_FOLDER), settings.log_max_bytes,
                                      settings.log_content)

    def start(self, served: Served) -> None:
        """Start the engine and the novelty worker for ``served`` (the loaded models); the routes answer after."""
        settings = self.settings
        write_manifest(self.request_log.folder, served.manifest())
        # Feedback may name an answer of an earlier server on the same log.
        self.known_ids = {record["id"]: record["model"] for record in read_log(self.request_log.folder)
                          if record.get("kind") == "request" and record.get("model")}
        self.engine = Engine(served.model, served.models[served.primary].tokenizer, settings.max_batch,
                             settings.batch_window_s, on_step=self.metrics.batch_size.observe)
        self.metrics.watch_engine(self.engine)
        if any(model.novelty is not None for model in served.models.values()):
            self.novelty = NoveltyWorker()
        self.served = served

    def stop(self) -> None:
        """Let the requests under way finish (up to the request timeout), then close the log."""
        if self.engine is not None:
            self.engine.stop(self.settings.request_timeout_s)
        if self.novelty is not None:
            self.novelty.stop()
        if self.request_log is not None:
            self.request_log.close()

    def ready(self) -> Served:
        if self.served is None:
            raise ApiError(503, self.load_error or "the model is still loading; retry when /ready says ready",
                           "service_unavailable")
        return self.served

    def pick(self, name: str | None) -> ServedModel:
        served = self.ready()
        model = served.models.get(name or served.primary)
        if model is None:
            raise ApiError(404, f"the model {name!r} does not exist; served: {', '.join(served.models)}",
                           param="model", code="model_not_found")
        return model

    def write(self, record: dict) -> None:
        if self.request_log is not None:
            self.request_log.write(record)

    def answered(self, record: dict) -> None:
        """Log the request record of an answer (``record`` has its ``id`` and ``model``): feedback may name it."""
        self.write(record)
        self.known_ids[record["id"]] = record["model"]

    def refused(self, route: str, status: int, message: str) -> None:
        """Log a request refused before any model saw it (a bad request, a 401, a foreign Host): one request record
        with no model. Nothing of the request's headers is written, so no key."""
        self.write({"kind": "request", "id": new_id("err"), "model": None, "route": route[:MAX_LOGGED_ROUTE],
                    "status": status, "latency_s": None, "ttft_s": None, "prompt_tokens": 0, "completion_tokens": 0,
                    "finish_reason": None, "error": message})
