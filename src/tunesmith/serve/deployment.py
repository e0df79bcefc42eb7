"""What the server serves at one moment: the loaded models (`Served`) and the engine that answers for them.

A request takes a lease on the deployment in service once, when it starts (`Deployment.hold`, returned by
`Deployment.release`), and uses that deployment to the end: a reload that swaps in a new one meanwhile changes
nothing for it. The replaced deployment is retired (`Deployment.retire`) once every lease taken on it is returned;
its engine then finishes what it was given (the generations of streamed answers, whose routes returned when the
stream began, and shadow answers) and stops, and the models go with the last reference to them.
"""

from __future__ import annotations

import gc
import logging
import threading
import time

import torch

from tunesmith.serve.engine import Engine
from tunesmith.serve.openai_api import ApiError
from tunesmith.serve.served import Served, ServedModel

log = logging.getLogger("tunesmith")


class Deployment:
    """``served`` and its ``engine``; ``aliases`` are extra names of the primary model (the marker's name, so a
    client that names it keeps its model across promotions)."""

    def __init__(self, served: Served, engine: Engine, aliases: tuple[str, ...] = ()):
        self.served, self.engine = served, engine
        self.aliases = tuple(alias for alias in aliases if alias not in served.models)
        self.retired = threading.Event()
        """Set once the engine stopped after the last lease (`retire`)."""
        self._leases = 0
        self._returned = threading.Condition()

    @property
    def primary_run(self) -> str | None:
        """The primary model's run folder (resolved), None for a plain model folder."""
        return self.served.models[self.served.primary].run_folder

    def runs(self) -> dict[str, str | None]:
        """Each served name → the run folder that answers for it (None: the base, or a plain model folder)."""
        return {name: model.run_folder for name, model in self.served.models.items()}

    def pick(self, name: str | None) -> ServedModel:
        """The model a request's ``model`` field names (None or an alias: the primary); a 404 naming what is
        served otherwise."""
        models = self.served.models
        model = models.get(self.served.primary if name is None or name in self.aliases else name)
        if model is None:
            raise ApiError(404, f"the model {name!r} does not exist; served: {', '.join(models)}", param="model",
                           code="model_not_found")
        return model

    def hold(self) -> None:
        """Take a lease: `retire` waits until it is returned (`release`)."""
        with self._returned:
            self._leases += 1

    def release(self) -> None:
        with self._returned:
            self._leases -= 1
            self._returned.notify_all()

    def retire(self, timeout_s: float) -> None:
        """Wait for the leases taken on this deployment to be returned, then stop its engine (which finishes what
        it holds) and free what it loaded. Each wait is bounded by ``timeout_s`` (the server's request timeout:
        no request outlives it), so a lease that is never returned cannot keep the old model forever."""
        waited_until = time.monotonic() + timeout_s
        with self._returned:
            while self._leases and (left := waited_until - time.monotonic()) > 0:
                self._returned.wait(left)
            if self._leases:
                log.warning("%d requests still held the replaced models after %.0f s; stopping them anyway",
                            self._leases, timeout_s)
        self.engine.stop(timeout_s)
        names = ", ".join(self.served.models)
        if self.engine.alive:
            log.warning("the engine of %s did not stop in %.0f s; its memory is freed when it does", names, timeout_s)
        else:
            self.served.model = self.engine.model = None  # the last references to the weights but a caller's
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        self.retired.set()
        log.info("retired: %s (its requests finished)", names)
