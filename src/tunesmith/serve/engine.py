"""The batching engine behind `tunesmith serve`: one thread owns the model and decodes every active request
together, one token per step.

Requests that arrive while the engine is idle are gathered for `batch_window_s` and prefilled together; requests
that arrive while others decode are prefilled at the next step and join the batch (their KV cache is padded on
the left to the batch's length, as `generate` pads prompts); a request that finishes (end of turn, stop string,
`max_tokens`, timeout, cancelled by its client) leaves the batch at once, and columns no remaining row needs are
dropped from the cache. Each row keeps its own sampling settings (temperature, top_p, a seeded generator) and its
own adapter: rows of different adapters decode in one forward pass through peft's mixed-batch ``adapter_names``.
Requests beyond ``max_batch`` wait, in their order, for a row to leave; each request ends at its deadline
(`Generation.deadline`) as ``timeout``, waiting or decoding, at the engine's next step, and its row is freed.

Written here rather than taken from transformers' continuous batching (``generate_batch``): that API flattens
all requests into one row for paged attention, so peft cannot pick an adapter per request, and its sampling
settings are per manager, not per request; this loop runs any causal LM with its own attention on CPU or GPU.

A failure ends only the requests it belongs to: a prompt batch whose prefill fails is tried again one prompt at a
time, so only the prompt that fails ends (with ``error``); a seed torch refuses or a row whose sampling gives no
probabilities ends that row alone; a failed decode forward ends the rows in it (the cache it was updating in place
cannot be trusted), never those still queued. Every request taken is ended once (`Generation.end`).

Classification requests (`classify`) run between decode steps, grouped by adapter into one label-scoring batch
(`tunesmith.predict.labels.score_labels`, the scoring evaluation uses).

Web routes reach the engine through `Engine.stream`, which carries a request's events from the engine's thread to
the event loop (the server's replies, whole and streamed, and the UI's playground).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from dataclasses import dataclass

import torch

from tunesmith.data.example import Message
from tunesmith.predict.labels import score_labels
from tunesmith.serve.generation import Finished, Generation, TokenLogprob, events_of
from tunesmith.serve.sampling import Sampling, sample_tokens

__all__ = ["BASE_ADAPTER", "Engine", "Finished", "Generation", "Sampling"]
log = logging.getLogger("tunesmith")

BASE_ADAPTER = "__base__"
"""peft's name for "no adapter" in a mixed batch."""
SEED_ERRORS = (ValueError, RuntimeError, OverflowError, TypeError)
"""What ``torch.Generator.manual_seed`` raises for a seed it cannot take (one outside 64 bits: ValueError)."""


@dataclass
class _Classification:
    prompt: list[Message]
    labels: list[str]
    adapter: str | None
    future: Future


class Engine:
    """Owns ``model``: every forward pass runs on the engine's thread. ``on_step(batch_size)`` is called after each
    decode step, ``queue_depth()`` says how many requests wait to join."""

    def __init__(self, model, tokenizer, max_batch: int = 32, batch_window_s: float = 0.005,
                 on_step: Callable[[int], None] | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch = max_batch
        self.batch_window_s = batch_window_s
        self.on_step = on_step or (lambda size: None)
        self.device = next(model.parameters()).device
        # transformers 5 renamed the forward's `past_key_values` to `cache` (the old name warns, then goes away).
        bare = model.get_base_model() if hasattr(model, "get_base_model") else model
        self._cache_arg = "cache" if "cache" in inspect.signature(bare.forward).parameters else "past_key_values"
        self._waiting: queue.Queue[Generation | _Classification] = queue.Queue()
        self._held: collections.deque[Generation] = collections.deque()  # taken, waiting in order for room
        self._active: list[Generation] = []
        self._cache = None
        self._mask: torch.Tensor | None = None  # [rows, columns] 1 where the cache holds a real token
        self._positions: torch.Tensor | None = None  # [rows] position of each row's next token
        self._last: torch.Tensor | None = None  # [rows] each row's newest token, not yet in the cache
        self._running = True
        self._thread = threading.Thread(target=self._loop, name="tunesmith-engine", daemon=True)
        self._thread.start()

    # ---- the server's side ----------------------------------------------------------------------------------------

    def submit(self, generation: Generation) -> Generation:
        """Queue ``generation``; its events go to its sink, on the engine's thread."""
        self._waiting.put(generation)
        return generation

    def stream(self, prompt_ids: list[int], sampling: Sampling, adapter: str | None, stop_ids: frozenset[int],
               deadline: float) -> AsyncIterator[str | Finished]:
        """Queue a request now, not at the first iteration (so requests keep their order), and return its events on
        the event loop's terms: text deltas (`str`), then one `Finished`. The engine ends it at ``deadline``
        (`time.monotonic`) as ``timeout``; leaving the iteration early (close it with `contextlib.aclosing`)
        cancels it, so its row leaves the batch at the next step."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[str | Finished] = asyncio.Queue()

        def hand_over(event: str | Finished) -> None:  # on the engine's thread
            try:
                loop.call_soon_threadsafe(events.put_nowait, event)
            except RuntimeError:  # the loop has closed: nobody waits for this request (a sink must not raise)
                pass

        generation = self.submit(Generation(prompt_ids=prompt_ids, sampling=sampling, adapter=adapter,
                                            stop_ids=stop_ids, sink=hand_over, deadline=deadline))
        return events_of(generation, events)

    def classify(self, prompt: list[Message], labels: list[str], adapter: str | None) -> Future:
        """A future of ``{label: log-probability}`` of ``prompt``'s reply being each label."""
        job = _Classification(prompt, labels, adapter, Future())
        self._waiting.put(job)
        return job.future

    def queue_depth(self) -> int:
        return self._waiting.qsize() + len(self._held)

    def active(self) -> int:
        return len(self._active)

    @property
    def alive(self) -> bool:
        """Whether the engine's thread still runs (`stop` returns after its timeout even when it does)."""
        return self._thread.is_alive()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish what is queued and running, then end the thread."""
        self._running = False
        self._waiting.put(None)  # wakes an idle loop
        self._thread.join(timeout)

    # ---- the engine thread -----------------------------------------------------------------------------------------

    def _loop(self) -> None:
        while self._running or self._active or self._held or not self._waiting.empty():
            admitting: list[Generation] = []
            try:
                arrivals = self._take_arrivals()
                admitting = [job for job in arrivals if isinstance(job, Generation)]
                self._run_classifications([job for job in arrivals if isinstance(job, _Classification)])
                if admitting:
                    self._admit(admitting)
                admitting = []
                if self._active:
                    self._decode_step()
            except Exception as error:  # noqa: BLE001 - a failed step must end its requests, not the server
                log.error("the engine failed a step (%s: %s); the requests in it end with an error",
                          type(error).__name__, error)
                log.debug("the failed step", exc_info=error)  # the traceback, with --verbose
                self._fail_all(f"{type(error).__name__}: {error}", admitting)

    def _take_arrivals(self) -> list:
        """What joins now: generations that waited for room first, then what is queued (blocking while idle, then
        gathering for the batch window). Generations beyond the batch's room are held, in order, for a later step;
        a held one whose client left or whose deadline passed ends there, without a row."""
        arrivals = []
        if not self._active and not self._held:
            first = self._waiting.get()
            if first is None:
                return []
            arrivals.append(first)
            gather_until = time.monotonic() + self.batch_window_s
            while (wait := gather_until - time.monotonic()) > 0:
                try:
                    job = self._waiting.get(timeout=wait)
                except queue.Empty:
                    break
                if job is not None:
                    arrivals.append(job)
        while True:
            try:
                job = self._waiting.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                arrivals.append(job)
        self._held.extend(job for job in arrivals if isinstance(job, Generation))
        self._end_held_early()
        room = self.max_batch - len(self._active)
        joining = [self._held.popleft() for _ in range(min(room, len(self._held)))]
        return [*joining, *(job for job in arrivals if isinstance(job, _Classification))]

    def _end_held_early(self) -> None:
        now = time.monotonic()
        for generation in list(self._held):
            reason = "cancelled" if generation.cancelled.is_set() else "timeout" if now > generation.deadline else None
            if reason is not None:
                self._held.remove(generation)
                generation.end(reason, "the deadline passed while it waited for room in the batch"
                               if reason == "timeout" else None)

    def _run_classifications(self, jobs: list[_Classification]) -> None:
        groups: dict[tuple, list[_Classification]] = {}
        for job in jobs:
            groups.setdefault((job.adapter, tuple(job.labels)), []).append(job)
        for (adapter, labels), group in groups.items():
            try:
                with self._adapter(adapter):
                    scores = score_labels(self.model, self.tokenizer, [job.prompt for job in group], list(labels),
                                          batch_size=len(group))
            except Exception as error:  # noqa: BLE001 - handed to the waiting request
                for job in group:
                    job.future.set_exception(error)
                continue
            for job, row in zip(group, scores):
                job.future.set_result(dict(zip(labels, row)))

    def _admit(self, arrivals: list[Generation]) -> None:
        """Prefill ``arrivals`` together and add them to the batch. When that fails, each is tried alone (the new
        prompts' cache is their own until they join, so nothing in the batch is touched): a prompt that cannot be
        run ends alone, with ``error``, and the others join."""
        arrivals = [generation for generation in arrivals if self._seed(generation)]
        if not arrivals:
            return
        try:
            cache, mask, tokens = self._prefill(arrivals)
        except Exception as error:  # noqa: BLE001 - it ends the request it belongs to, found by trying each alone
            if len(arrivals) > 1:
                log.warning("the engine could not prefill %d prompts together (%s: %s); trying each alone",
                            len(arrivals), type(error).__name__, error)
                for generation in arrivals:
                    self._admit([generation])
                return
            log.error("the engine could not prefill a prompt of %d tokens (%s: %s); its request ends with an error",
                      len(arrivals[0].prompt_ids), type(error).__name__, error)
            log.debug("the failed prefill", exc_info=error)  # the traceback, with --verbose
            arrivals[0].end("error", f"{type(error).__name__}: {error}")
            return
        self._join(arrivals, cache, mask, mask.sum(-1), tokens)
        self._emit_tokens(arrivals, tokens)
        self._retire()

    def _seed(self, generation: Generation) -> bool:
        """Give ``generation`` a fresh generator of its seed (again on a retry, so a retried row samples as it would
        have); a seed torch cannot take ends the request alone. Whether it may join."""
        seed = generation.sampling.seed
        generation._generator = None
        if seed is None:
            return True
        try:
            generation._generator = torch.Generator(device=self.device).manual_seed(seed)
        except SEED_ERRORS as error:
            generation.end("error", f"the seed {seed} cannot seed a generator ({error}): give one from 0 to 2**64-1")
            return False
        return True

    def _prefill(self, arrivals: list[Generation]) -> tuple[object, torch.Tensor, torch.Tensor]:
        """Run the new prompts (left-padded together) and take each one's first token: their cache, mask and
        tokens."""
        longest = max(len(g.prompt_ids) for g in arrivals)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (longest - len(g.prompt_ids)) + g.prompt_ids for g in arrivals], device=self.device)
        mask = torch.tensor([[0] * (longest - len(g.prompt_ids)) + [1] * len(g.prompt_ids) for g in arrivals],
                            device=self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            output = self._forward(arrivals, input_ids=ids, attention_mask=mask, position_ids=positions,
                                   use_cache=True, logits_to_keep=1)
        tokens = self._sample(arrivals, output.logits[:, -1])
        return getattr(output, self._cache_arg), mask, tokens

    def _decode_step(self) -> None:
        rows = len(self._active)
        mask = torch.cat([self._mask, self._mask.new_ones(rows, 1)], dim=1)
        with torch.inference_mode():
            output = self._forward(self._active, input_ids=self._last[:, None], attention_mask=mask,
                                   position_ids=self._positions[:, None], use_cache=True,
                                   **{self._cache_arg: self._cache})
        self._mask, self._positions = mask, self._positions + 1
        tokens = self._sample(self._active, output.logits[:, -1])
        self._last = tokens
        self.on_step(rows)
        self._emit_tokens(self._active, tokens)
        self._retire()

    def _forward(self, rows: list[Generation], **inputs):
        adapters = {row.adapter for row in rows}
        if len(adapters) > 1:
            return self.model(**inputs, adapter_names=[row.adapter for row in rows])
        with self._adapter(adapters.pop()):
            return self.model(**inputs)

    @contextlib.contextmanager
    def _adapter(self, adapter: str | None):
        """Run with one adapter active (or the bare base): cheaper than a mixed batch, which routes each row."""
        if adapter is None:
            yield
        elif adapter == BASE_ADAPTER:
            with self.model.disable_adapter():
                yield
        else:
            if self.model.active_adapter != adapter:
                self.model.set_adapter(adapter)
            yield

    def _sample(self, rows: list[Generation], logits: torch.Tensor) -> torch.Tensor:
        """One token per row (`sample_tokens`); each row keeps the chosen token's log-probability (and, when it asks,
        the step's most likely tokens). A row that cannot be sampled is failed (it leaves at the next retirement;
        its token is a placeholder)."""
        tokens, logprobs, top, failed = sample_tokens([row.sampling for row in rows],
                                                      [row._generator for row in rows], logits)
        chosen = tokens.tolist() if any(row.sampling.top_logprobs is not None for row in rows) else None
        for index, (row, logprob) in enumerate(zip(rows, logprobs)):
            if index in failed:
                row.fail(failed[index])
                continue
            row.logprobs.append(logprob)
            if row.sampling.top_logprobs is not None:
                row.token_logprobs.append(TokenLogprob(chosen[index], logprob, top.get(index, ([], []))))
        return tokens

    def _join(self, arrivals: list[Generation], cache, mask: torch.Tensor, positions: torch.Tensor,
              tokens: torch.Tensor) -> None:
        """Add prefilled rows to the running batch, padding the shorter side's cache on the left."""
        self._active += arrivals
        if self._cache is None:
            self._cache, self._mask, self._positions, self._last = cache, mask, positions, tokens
            return
        width = max(self._mask.shape[1], mask.shape[1])
        old_pad, new_pad = width - self._mask.shape[1], width - mask.shape[1]
        for old_layer, new_layer in zip(self._cache.layers, cache.layers):
            old_layer.keys = torch.cat([_pad_left(old_layer.keys, old_pad), _pad_left(new_layer.keys, new_pad)])
            old_layer.values = torch.cat([_pad_left(old_layer.values, old_pad), _pad_left(new_layer.values, new_pad)])
        self._mask = torch.cat([_pad_left(self._mask, old_pad), _pad_left(mask, new_pad)])
        self._positions = torch.cat([self._positions, positions])
        self._last = torch.cat([self._last, tokens])

    def _emit_tokens(self, rows: list[Generation], tokens: torch.Tensor) -> None:
        now = time.monotonic()
        for row, token in zip(rows, tokens.tolist()):
            if row.finish is not None:  # failed at sampling: its token is a placeholder
                continue
            if row.first_token_at is None:
                row.first_token_at = now
            if token in row.stop_ids:
                row.finish = "stop"
            else:
                row.generated.append(token)
                self._detokenize(row)
                if row.finish is None and len(row.generated) >= row.sampling.max_tokens:
                    row.finish = "length"
            if row.finish is None and row.cancelled.is_set():
                row.finish = "cancelled"
            if row.finish is None and now > row.deadline:
                row.finish = "timeout"
            cut_at_stop_string = row.finish == "stop" and token not in row.stop_ids
            if row.finish is not None and not cut_at_stop_string:
                self._flush_text(row)
            self._send_text(row)

    def _detokenize(self, row: Generation) -> None:
        """Append the new token's text, decoding a window of recent tokens so that multi-token characters and
        word-boundary spaces come out right (the incremental scheme of text-generation-inference), and end the
        row at a stop string."""
        ids = row.generated
        before = self.tokenizer.decode(ids[row._prefix_offset:row._read_offset], skip_special_tokens=True)
        after = self.tokenizer.decode(ids[row._prefix_offset:], skip_special_tokens=True)
        if len(after) > len(before) and not after.endswith("\ufffd"):
            row.text += after[len(before):]
            row._prefix_offset, row._read_offset = row._read_offset, len(ids)
        for stop in row.sampling.stop:
            at = row.text.find(stop, max(0, row.sent - len(stop)))
            if at >= 0:
                row.text = row.text[:at]
                row.finish = "stop"

    def _flush_text(self, row: Generation) -> None:
        """At the end, the text of tokens held back for being an incomplete character is added as it decodes."""
        rest = self.tokenizer.decode(row.generated[row._prefix_offset:], skip_special_tokens=True)
        before = self.tokenizer.decode(row.generated[row._prefix_offset:row._read_offset], skip_special_tokens=True)
        if len(rest) > len(before):
            row.text += rest[len(before):]
        row._prefix_offset = row._read_offset = len(row.generated)

    def _send_text(self, row: Generation) -> None:
        """Hand the sink the text that can no longer change: held back is a tail that may be the start of a stop
        string (until the row ends)."""
        end = len(row.text)
        if row.finish is None:
            for stop in row.sampling.stop:
                for size in range(min(len(stop) - 1, end - row.sent), 0, -1):
                    if row.text.endswith(stop[:size]):
                        end = min(end, len(row.text) - size)
                        break
        if end > row.sent:
            row.sink(row.text[row.sent:end])
            row.sent = end

    def _retire(self) -> None:
        """Finished rows leave the batch; cache columns that no remaining row uses are dropped."""
        done = [row for row in self._active if row.finish is not None]
        if not done:
            return
        keep = [index for index, row in enumerate(self._active) if row.finish is None]
        for row in done:
            row.end()
        self._active = [self._active[index] for index in keep]
        if not keep:
            self._cache = self._mask = self._positions = self._last = None
            return
        index = torch.tensor(keep, device=self.device)
        self._mask = self._mask[index]
        first = int(self._mask.any(0).nonzero()[0])  # leading columns that are padding for every remaining row
        self._mask = self._mask[:, first:]
        for layer in self._cache.layers:
            layer.keys = layer.keys[index, :, first:]
            layer.values = layer.values[index, :, first:]
        self._positions, self._last = self._positions[index], self._last[index]

    def _fail_all(self, message: str, admitting: list[Generation]) -> None:
        """End the batch's rows, and the arrivals that were joining it, with ``error``."""
        for row in [*self._active, *admitting]:
            row.end("error", message)
        self._active = []
        self._cache = self._mask = self._positions = self._last = None


def _pad_left(tensor: torch.Tensor, columns: int) -> torch.Tensor:
    """``tensor`` with ``columns`` zeros before its sequence axis (dim 1 of a mask, dim 2 of a key/value cache)."""
    if columns == 0:
        return tensor
    axis = 1 if tensor.dim() == 2 else 2
    shape = list(tensor.shape)
    shape[axis] = columns
    return torch.cat([tensor.new_zeros(shape), tensor], dim=axis)
