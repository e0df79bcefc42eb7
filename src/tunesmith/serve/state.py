"""What the server's routes share: its settings, the deployment in service (the loaded models and their engine,
`tunesmith.serve.deployment`), the novelty worker, the request log and the metrics; and the reload that swaps in a
new deployment without dropping a request (`ServerState.reload`)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tunesmith.errors import TunesmithError
from tunesmith.monitor.request_log import RequestLog, read_log, read_manifest, write_manifest
from tunesmith.serve.deployment import Deployment
from tunesmith.serve.engine import Engine
from tunesmith.serve.novelty_worker import NoveltyWorker
from tunesmith.serve.openai_api import ApiError, new_id
from tunesmith.serve.prometheus import ServerMetrics
from tunesmith.serve.served import Served
from tunesmith.text import shorten

log = logging.getLogger("tunesmith")
LOG_FOLDER = "serve_logs"
"""The request log's folder in the first run's folder (or the current one, serving a plain model)."""
MAX_LOGGED_ROUTE = 200
"""A refused request's path is logged up to this many characters (it is whatever the client sent)."""
MAX_LOAD_ERROR = 600
"""Characters of a library's error message a failed load reports (some span pages)."""


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
    """Each request's wall-clock deadline: past it, it ends with a 408 and its row in the batch is freed."""
    max_request_bytes: int = 4 * 2**20
    """Larger request bodies are refused (413) unread."""
    max_batch: int = 32
    batch_window_s: float = 0.005
    watch: Path | None = None
    """A marker (`tunesmith.promotion`) whose run is served: the server reloads when it points elsewhere."""
    watch_interval_s: float = 1.0
    """How often the marker is looked at."""
    aliases: tuple[str, ...] = ()
    """Other names of the primary model (the watched marker's name): a client naming one keeps its model across
    promotions."""


class ServerState:
    """What the routes share: the log (open from the start, so requests refused while the model loads are logged
    too), the metrics, and, once loading finished, the deployment in service and the novelty worker. ``load``
    loads what the server serves; a reload calls it again."""

    def __init__(self, settings: ServerSettings, metrics: ServerMetrics, load: Callable[[], Served]):
        self.settings, self.metrics, self.load = settings, metrics, load
        self.deployment: Deployment | None = None
        self.novelty: NoveltyWorker | None = None
        self.request_log: RequestLog | None = None
        self.load_error: str | None = None
        self.reload_error: str | None = None
        """Why the last reload failed (the previous deployment stayed in service); None after a good one."""
        self.known_ids: dict[str, tuple[str, str | None]] = {}
        """The id of every answered request → the served name and the run that answered it (feedback names them)."""
        self._switching = threading.Lock()  # a lease is taken on the deployment in service, never on a replaced one
        self._reloading = threading.Lock()
        self._retiring: list[threading.Thread] = []

    @property
    def served(self) -> Served | None:
        """The models in service (None until loaded)."""
        return self.deployment.served if self.deployment is not None else None

    @property
    def engine(self) -> Engine | None:
        return self.deployment.engine if self.deployment is not None else None

    def open_log(self) -> None:
        settings = self.settings
        self.request_log = RequestLog(settings.log_dir or Path(LOG_FOLDER), settings.log_max_bytes,
                                      settings.log_content)

    def start(self, served: Served) -> None:
        """Put ``served`` (the first models loaded) in service; the routes answer after."""
        # Feedback may name an answer of an earlier server on the same log.
        self.known_ids = {record["id"]: (record["model"], record.get("run"))
                          for record in read_log(self.request_log.folder)
                          if record.get("kind") == "request" and record.get("model")}
        self._switch(served, first=True)

    def stop(self) -> None:
        """Let the requests under way finish (up to the request timeout), then close the log."""
        for retiring in self._retiring:
            retiring.join(self.settings.request_timeout_s)
        if self.deployment is not None:
            self.deployment.engine.stop(self.settings.request_timeout_s)
        if self.novelty is not None:
            self.novelty.stop()
        if self.request_log is not None:
            self.request_log.close()

    def ready(self) -> Deployment:
        deployment = self.deployment
        if deployment is None:
            raise ApiError(503, self.load_error or "the model is still loading; retry when /ready says ready",
                           "service_unavailable")
        return deployment

    @contextmanager
    def lease(self) -> Iterator[Deployment]:
        """The deployment in service, held for the block: a reload meanwhile lets the block finish on it."""
        with self._switching:
            deployment = self.ready()
            deployment.hold()
        try:
            yield deployment
        finally:
            deployment.release()

    def reload(self, trigger: str) -> dict:
        """Load what the server serves anew (``load``: the marker's run now) beside the models in service, switch
        to it, and retire the old once its requests finished. Blocks while loading; ``trigger`` (``watch``,
        ``admin``) is logged. A failed load keeps the old in service: an `ApiError` (422 for a run that cannot be
        served, 500 for an unexpected failure, 409 while another reload runs) saying why."""
        if not self._reloading.acquire(blocking=False):
            raise ApiError(409, "a reload is under way; retry when it has finished", code="reload_in_progress")
        try:
            before, started = self.ready(), time.monotonic()
            record = {"kind": "reload", "id": new_id("reload"), "trigger": trigger, "from": before.runs()}
            try:
                served = self.load()
            except Exception as error:  # noqa: BLE001 - any failure keeps the old in service; it is logged and answered
                failure = _load_failure(error)
                self.reload_error = failure.message
                self.write({**record, "run": before.primary_run, "status": failure.status, "error": failure.message})
                raise failure from None
            after = self._switch(served)
            self.reload_error = None
            seconds = round(time.monotonic() - started, 3)
            self.write({**record, "run": after.primary_run, "status": 200, "to": after.runs(), "seconds": seconds})
            log.info("reloaded (%s) in %.1f s: serving %s", trigger, seconds, ", ".join(after.served.models))
            return {"status": "reloaded", "from": before.runs(), "to": after.runs(), "seconds": seconds}
        finally:
            self._reloading.release()

    def _switch(self, served: Served, first: bool = False) -> Deployment:
        """Start an engine for ``served`` and put it in service; the deployment it replaces is retired in a thread
        of its own once its leases are returned."""
        settings = self.settings
        earlier = {} if first else (read_manifest(self.request_log.folder) or {}).get("models", {})
        # The replaced runs stay in served.json: the monitor and feedback export still find the runs of their records.
        write_manifest(self.request_log.folder, {**served.manifest(),
                                                 "models": {**earlier, **served.manifest()["models"]}})
        engine = Engine(served.model, served.models[served.primary].tokenizer, settings.max_batch,
                        settings.batch_window_s, on_step=self.metrics.batch_size.observe)
        if self.novelty is None and any(model.novelty is not None for model in served.models.values()):
            self.novelty = NoveltyWorker()
        deployment = Deployment(served, engine, settings.aliases)
        with self._switching:
            replaced, self.deployment = self.deployment, deployment
        self.metrics.watch_engine(engine)
        if replaced is not None:
            retiring = threading.Thread(target=replaced.retire, args=(settings.request_timeout_s,),
                                        name="tunesmith-retire", daemon=True)
            retiring.start()
            self._retiring = [thread for thread in self._retiring if thread.is_alive()] + [retiring]
        return deployment

    def write(self, record: dict) -> None:
        if self.request_log is not None:
            self.request_log.write(record)

    def answered(self, record: dict) -> None:
        """Log the request record of an answer (``record`` has its ``id``, ``model`` and ``run``): feedback may
        name it."""
        self.write(record)
        self.known_ids[record["id"]] = (record["model"], record["run"])

    def refused(self, route: str, status: int, message: str) -> None:
        """Log a request refused before any model saw it (a bad request, a 401, a foreign Host): one request record
        with no model. Nothing of the request's headers is written, so no key."""
        self.write({"kind": "request", "id": new_id("err"), "model": None, "run": None,
                    "route": route[:MAX_LOGGED_ROUTE], "status": status, "latency_s": None, "ttft_s": None,
                    "prompt_tokens": 0, "completion_tokens": 0, "finish_reason": None, "error": message})


def load_failure(error: Exception) -> str:
    """Why a load failed, in one line: a `TunesmithError` (a marker pointing nowhere, a damaged run) as it says it;
    anything else (a library's own error on a model folder it cannot read, a disk error) as its type and message,
    cut to `MAX_LOAD_ERROR` characters; its traceback is in the log with --verbose."""
    if isinstance(error, TunesmithError):
        return str(error)
    log.debug("the load failed", exc_info=error)
    return shorten(f"{type(error).__name__}: {error}", MAX_LOAD_ERROR)


def _load_failure(error: Exception) -> ApiError:
    """A failed reload as the answer says it: a run that cannot be served (a `TunesmithError`) is the caller's to
    fix (422); anything else is the server's (500)."""
    message = f"the reload failed, the previous models stay in service: {load_failure(error)}"
    log.error("%s", message)
    if isinstance(error, TunesmithError):
        return ApiError(422, message, code="load_failed")
    return ApiError(500, message, "server_error", code="load_failed")
