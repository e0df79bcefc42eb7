"""One generation request as the engine (`tunesmith.serve.engine`) holds it (`Generation`), how it ends
(`Finished`), and how its events reach the event loop that waits for them (`events_of`).

Every request the engine takes is ended exactly once (`Generation.end`): by its answer, its client leaving, its
deadline, or a failure of the step it was in; and a waiter whose engine stopped under it still gets its end
`STALL_GRACE_S` after the deadline, so nothing awaits a finish that never comes.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import torch

from tunesmith.predict.calibration import sequence_confidence
from tunesmith.serve.sampling import Sampling, TopTokens

STALL_GRACE_S = 30.0
"""How long past a request's deadline `events_of` waits for the engine to end it (the engine checks deadlines
between steps, so it ends a request a step late) before ending it itself: an engine stopped under a request (the
playground unloads runs) never answers."""


@dataclass(frozen=True)
class TokenLogprob:
    """One chosen token of a request that asked for log-probabilities: its id, its log-probability, and the most
    likely tokens of that step with theirs."""

    token: int
    logprob: float
    top: TopTokens


@dataclass
class Finished:
    """The end of a request: why it ended (``stop``, ``length``, ``timeout``, ``cancelled``, ``error``), its token
    counts, the whole answer, the time of its first token, and its sequence confidence: the geometric mean of the
    probabilities of the tokens the model chose, the end-of-turn token that ended it included
    (`tunesmith.serve.sampling`); None without tokens."""

    reason: str
    prompt_tokens: int
    completion_tokens: int
    text: str
    first_token_at: float | None
    error: str | None = None
    confidence: float | None = None
    token_logprobs: list[TokenLogprob] | None = None
    """Each chosen token with its log-probabilities, the end-of-turn token that ended the answer included, when the
    request asked for them (`Sampling.top_logprobs` not None); else None."""


Sink = Callable[[object], None]
"""Receives a request's events from the engine thread, in order: text deltas (`str`), then one `Finished`.
It must not block (`Engine.stream` hands them to its event loop with ``call_soon_threadsafe``)."""


@dataclass
class Generation:
    """One request inside the engine."""

    prompt_ids: list[int]
    sampling: Sampling
    adapter: str | None
    """A peft adapter name, `tunesmith.serve.engine.BASE_ADAPTER`, or None for a model without adapters."""
    stop_ids: frozenset[int]
    sink: Sink
    deadline: float
    """`time.monotonic` time at which the engine ends the request as ``timeout`` (at its next step)."""
    cancelled: threading.Event = field(default_factory=threading.Event)
    generated: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    """The log-probability of each chosen token (the stop token too), under the model's own distribution."""
    token_logprobs: list[TokenLogprob] = field(default_factory=list)
    """Each chosen token with its log-probabilities, when the request asks for them."""
    text: str = ""
    sent: int = 0
    """Characters of ``text`` already handed to the sink."""
    first_token_at: float | None = None
    finish: str | None = None
    error: str | None = None
    """Why the request failed, when ``finish`` is ``error``."""
    ended: bool = False
    """Whether its `Finished` was handed to the sink (a request ends once)."""
    _prefix_offset: int = 0
    _read_offset: int = 0
    _generator: torch.Generator | None = None

    def cancel(self) -> None:
        """Ask the engine to drop this request at its next step (a client that went away)."""
        self.cancelled.set()

    def fail(self, error: str) -> None:
        """Mark the request failed; it leaves the batch at the engine's next retirement."""
        self.finish, self.error = "error", error

    def end(self, reason: str | None = None, error: str | None = None) -> None:
        """Hand the sink this request's `Finished` (``reason`` and ``error``, else its own), unless it ended."""
        if self.ended:
            return
        self.ended = True
        reason = reason or self.finish or "error"
        self.sink(Finished(reason, len(self.prompt_ids), len(self.generated), self.text, self.first_token_at,
                           error or self.error, confidence=sequence_confidence(self.logprobs),
                           token_logprobs=self.token_logprobs if self.sampling.top_logprobs is not None else None))


async def events_of(generation: Generation, events: asyncio.Queue) -> AsyncIterator[str | Finished]:
    """``generation``'s events as `Engine.stream` hands them over; a request the engine never ends (it stopped under
    it: a playground run unloaded at that moment) ends `STALL_GRACE_S` after its deadline."""
    try:
        while True:
            try:
                wait = max(0.0, generation.deadline - time.monotonic()) + STALL_GRACE_S
                event = await asyncio.wait_for(events.get(), wait)
            except asyncio.TimeoutError:  # not the builtin TimeoutError: they differ before Python 3.11
                yield Finished("timeout", len(generation.prompt_ids), len(generation.generated),
                               generation.text[:generation.sent], generation.first_token_at,
                               "no answer from the engine in time")
                return
            yield event
            if isinstance(event, Finished):
                return
    finally:
        generation.cancel()  # a no-op once finished
