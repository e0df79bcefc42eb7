"""The batching engine on the tiny model: rows that join and leave a running batch decode exactly as they would
alone; stop strings, cancellation, timeouts and the batch cap; `Engine.stream`, which carries the events to the
event loop."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

from tunesmith.data.tokenize import prompt_token_ids
from tunesmith.serve import generation as generation_module
from tunesmith.serve.engine import Engine, Finished, Generation, Sampling


@pytest.fixture()
def chatty(chatty_model_dir):
    model = AutoModelForCausalLM.from_pretrained(chatty_model_dir).eval()
    return model, AutoTokenizer.from_pretrained(chatty_model_dir)


class Collector:
    """A sink that keeps a request's text deltas and its `Finished`."""

    def __init__(self):
        self.deltas: list[str] = []
        self.finished: Finished | None = None
        self.done = threading.Event()

    def __call__(self, event) -> None:
        if isinstance(event, Finished):
            self.finished = event
            self.done.set()
        else:
            self.deltas.append(event)


def submit(engine, tokenizer, text: str, max_tokens: int = 24, timeout: float = 60,
           **sampling) -> tuple[Generation, Collector]:
    sink = Collector()
    ids = prompt_token_ids(tokenizer, [{"role": "user", "content": text}])
    generation = engine.submit(Generation(prompt_ids=ids, sampling=Sampling(max_tokens=max_tokens, **sampling),
                                          adapter=None, stop_ids=frozenset([tokenizer.eos_token_id]), sink=sink,
                                          deadline=time.monotonic() + timeout))
    return generation, sink


def alone(model, tokenizer, text: str, max_tokens: int = 24) -> list[int]:
    ids = torch.tensor([prompt_token_ids(tokenizer, [{"role": "user", "content": text}])])
    config = GenerationConfig(max_new_tokens=max_tokens, do_sample=False, eos_token_id=tokenizer.eos_token_id,
                              pad_token_id=tokenizer.pad_token_id)
    output = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config)[0]
    return [token for token in output[ids.shape[1]:].tolist() if token != tokenizer.eos_token_id]


TEXTS = ["hi", "the quick brown fox jumps over the lazy dog " * 3, "sea", "WINNER!! claim your cash reward now",
         "are we still meeting for lunch tomorrow? I'll bring the notes", "0 1 2 3"]


def test_rows_joining_a_running_batch_decode_as_alone(chatty):
    model, tokenizer = chatty
    expected = [alone(model, tokenizer, text) for text in TEXTS]
    engine = Engine(model, tokenizer, max_batch=4)
    try:
        runs = []
        for text in TEXTS:  # staggered: later rows join a batch already decoding; at most 4 decode at once
            runs.append(submit(engine, tokenizer, text))
            time.sleep(0.01)
        for generation, sink in runs:
            assert sink.done.wait(60)
        assert [generation.generated for generation, _ in runs] == expected
        for (generation, sink), tokens in zip(runs, expected):
            assert sink.finished.text == tokenizer.decode(tokens, skip_special_tokens=True)
            assert "".join(sink.deltas) == sink.finished.text
            assert sink.finished.completion_tokens == len(tokens)
    finally:
        engine.stop()
    assert engine.active() == 0


def test_a_stop_string_ends_the_answer_and_is_never_streamed(chatty):
    model, tokenizer = chatty
    full = tokenizer.decode(alone(model, tokenizer, TEXTS[3], 40), skip_special_tokens=True)
    stop = full[5:8]
    engine = Engine(model, tokenizer)
    try:
        _, sink = submit(engine, tokenizer, TEXTS[3], 40, stop=(stop, "never-there"))
        assert sink.done.wait(60)
    finally:
        engine.stop()
    assert sink.finished.text == full[:full.index(stop)] and sink.finished.reason == "stop"
    assert "".join(sink.deltas) == sink.finished.text


def test_cancelled_and_late_rows_leave_without_stalling_the_others(chatty):
    model, tokenizer = chatty
    engine = Engine(model, tokenizer)
    try:
        long_one, long_sink = submit(engine, tokenizer, TEXTS[1], 400)
        late, late_sink = submit(engine, tokenizer, TEXTS[0], 400, timeout=0.0)
        short, short_sink = submit(engine, tokenizer, TEXTS[2], 5)
        long_one.cancel()
        for sink in (long_sink, late_sink, short_sink):
            assert sink.done.wait(60)
    finally:
        engine.stop()
    assert long_sink.finished.reason == "cancelled" and late_sink.finished.reason == "timeout"
    assert short_sink.finished.reason in ("length", "stop") and short.generated == alone(model, tokenizer, TEXTS[2], 5)


def test_seeded_sampling_is_repeatable_and_top_p_near_zero_is_greedy(chatty):
    model, tokenizer = chatty
    engine = Engine(model, tokenizer)
    try:
        runs = [submit(engine, tokenizer, TEXTS[4], 16, temperature=1.0, seed=3) for _ in range(2)]
        nucleus = submit(engine, tokenizer, TEXTS[4], 16, temperature=1.0, top_p=1e-6, seed=4)
        for _, sink in [*runs, nucleus]:
            assert sink.done.wait(60)
    finally:
        engine.stop()
    assert runs[0][0].generated == runs[1][0].generated
    assert nucleus[0].generated == alone(model, tokenizer, TEXTS[4], 16)


# ---- Engine.stream: the engine's events on the event loop ----------------------------------------------------------


def stream_of(engine, tokenizer, text: str, max_tokens: int = 24, timeout: float = 60):
    ids = prompt_token_ids(tokenizer, [{"role": "user", "content": text}])
    return engine.stream(ids, Sampling(max_tokens=max_tokens), None, frozenset([tokenizer.eos_token_id]),
                         deadline=time.monotonic() + timeout)


def test_stream_gives_the_deltas_then_the_end_as_the_sink_does(chatty):
    model, tokenizer = chatty
    engine = Engine(model, tokenizer)

    async def collect() -> list:
        return [event async for event in stream_of(engine, tokenizer, TEXTS[3])]

    try:
        events = asyncio.run(collect())
    finally:
        engine.stop()
    *deltas, finished = events
    assert isinstance(finished, Finished) and all(isinstance(delta, str) for delta in deltas)
    expected = alone(model, tokenizer, TEXTS[3])
    assert "".join(deltas) == finished.text == tokenizer.decode(expected, skip_special_tokens=True)
    assert finished.completion_tokens == len(expected)


def test_leaving_a_stream_early_cancels_its_row(chatty):
    model, tokenizer = chatty
    engine = Engine(model, tokenizer)

    async def leave_after_one_delta() -> None:
        async with contextlib.aclosing(stream_of(engine, tokenizer, TEXTS[1], max_tokens=400)) as events:
            assert isinstance(await anext(events), str)
            assert engine.active() == 1
        deadline = time.monotonic() + 30
        while engine.active() and time.monotonic() < deadline:  # the row leaves at the engine's next step
            await asyncio.sleep(0.01)

    try:
        asyncio.run(leave_after_one_delta())
        assert engine.active() == 0
        _, sink = submit(engine, tokenizer, TEXTS[2], 5)  # and the engine goes on
        assert sink.done.wait(60) and sink.finished.reason in ("length", "stop")
    finally:
        engine.stop()


def test_a_stream_whose_loop_has_closed_does_not_break_the_engine(chatty):
    model, tokenizer = chatty
    engine = Engine(model, tokenizer)

    async def leave_after_one_delta() -> None:
        async with contextlib.aclosing(stream_of(engine, tokenizer, TEXTS[1], max_tokens=400)) as events:
            await anext(events)

    try:
        asyncio.run(leave_after_one_delta())  # the loop closes before the engine ends the row
        _, sink = submit(engine, tokenizer, TEXTS[2], 5)
        assert sink.done.wait(60) and sink.finished.reason in ("length", "stop")
        assert engine.active() == 0
    finally:
        engine.stop()


def test_a_stream_whose_engine_stopped_ends_in_a_timeout_rather_than_waiting_forever(chatty, monkeypatch):
    model, tokenizer = chatty
    engine = Engine(model, tokenizer)
    engine.stop()  # as the playground unloads a run while a page asks it
    monkeypatch.setattr(generation_module, "STALL_GRACE_S", 0.2)

    async def collect() -> list:
        return [event async for event in stream_of(engine, tokenizer, TEXTS[0], timeout=0.0)]

    (finished,) = asyncio.run(collect())
    assert finished.reason == "timeout" and finished.error and finished.completion_tokens == 0


def test_a_stream_is_queued_when_asked_for_so_requests_keep_their_order(chatty, monkeypatch):
    """The server asks for a request's stream, then queues its shadow: the request is first in the engine's line,
    before anything iterates the stream."""
    model, tokenizer = chatty
    engine = Engine(model, tokenizer)
    queued: list[Generation] = []
    queue_now = engine.submit
    monkeypatch.setattr(engine, "submit", lambda generation: queued.append(generation) or queue_now(generation))

    async def ask_then_queue_another() -> Finished:
        events = stream_of(engine, tokenizer, TEXTS[0])
        assert len(queued) == 1
        submit(engine, tokenizer, TEXTS[1], 5)
        return [event async for event in events][-1]

    try:
        finished = asyncio.run(ask_then_queue_another())
    finally:
        engine.stop()
    assert queued[0].prompt_ids == prompt_token_ids(tokenizer, [{"role": "user", "content": TEXTS[0]}])
    assert len(queued) == 2 and finished.reason in ("length", "stop")


# ---- failures end only their own request ----------------------------------------------------------------------


def submit_ids(engine, ids: list[int], max_tokens: int, timeout: float = 60, stop_ids=frozenset(),
               **sampling) -> tuple[Generation, Collector]:
    sink = Collector()
    generation = engine.submit(Generation(prompt_ids=ids, sampling=Sampling(max_tokens=max_tokens, **sampling),
                                          adapter=None, stop_ids=stop_ids, sink=sink,
                                          deadline=time.monotonic() + timeout))
    return generation, sink


def test_bad_requests_in_a_batch_end_alone_and_the_others_decode_as_alone(chatty):
    """A seed torch refuses, a temperature whose logits overflow, and a prompt the model cannot run (a token id past
    the vocabulary: the embedding's own IndexError) are prefilled in one batch with two good requests: each bad one
    ends with its own error, the good ones decode exactly as they do alone."""
    model, tokenizer = chatty
    expected = [alone(model, tokenizer, text, 8) for text in TEXTS[:2]]
    engine = Engine(model, tokenizer, batch_window_s=0.5)  # everything below arrives in one prefill batch
    try:
        good = [submit(engine, tokenizer, text, 8) for text in TEXTS[:2]]
        _, seed = submit(engine, tokenizer, TEXTS[2], 8, temperature=1.0, seed=2**64)
        _, tiny = submit(engine, tokenizer, TEXTS[3], 8, temperature=1e-39)
        _, unknown = submit_ids(engine, [len(tokenizer) + 10], 8)
        for sink in [*(sink for _, sink in good), seed, tiny, unknown]:
            assert sink.done.wait(60)
        assert [generation.generated for generation, _ in good] == expected
        assert all(sink.finished.reason in ("length", "stop") and sink.finished.error is None for _, sink in good)
        assert seed.finished.reason == "error" and seed.finished.error == (
            "the seed 18446744073709551616 cannot seed a generator (Overflow when unpacking long long): give one "
            "from 0 to 2**64-1")
        assert tiny.finished.reason == "error" and tiny.finished.error == (
            "sampling at temperature 1e-39 gave probabilities that are not finite numbers")
        assert unknown.finished.reason == "error" and unknown.finished.error.startswith("IndexError: index out of")
        _, after = submit(engine, tokenizer, TEXTS[2], 5)  # and the engine goes on
        assert after.done.wait(60) and after.finished.reason in ("length", "stop")
    finally:
        engine.stop()
    assert engine.active() == 0 and engine.queue_depth() == 0


def test_requests_end_at_their_deadline_decoding_or_waiting_for_room(chatty):
    model, tokenizer = chatty
    engine = Engine(model, tokenizer, max_batch=1)
    ids = prompt_token_ids(tokenizer, [{"role": "user", "content": TEXTS[1]}])
    try:
        _, decoding = submit_ids(engine, ids, 100_000, timeout=3.0)  # no stop token: it decodes until its deadline
        while engine.active() == 0:
            time.sleep(0.01)
        _, waiting = submit_ids(engine, ids, 8, timeout=0.3)
        assert waiting.done.wait(10) and not decoding.done.is_set()
        assert waiting.finished.reason == "timeout" and waiting.finished.completion_tokens == 0
        assert waiting.finished.error == "the deadline passed while it waited for room in the batch"
        assert decoding.done.wait(30) and decoding.finished.reason == "timeout"
        assert decoding.finished.completion_tokens > 0 and engine.active() == 0  # its row is freed
    finally:
        engine.stop()
    assert engine.active() == 0 and engine.queue_depth() == 0
