"""Hot-swap: a server watching a marker swaps to the promoted run while requests keep coming; every request is
answered, each by exactly one run (the one it started on), none dropped; the old model is stopped and freed once its
requests finished; `/v1/models`, `/ready` and every request-log record name the run that answered."""

from __future__ import annotations

import concurrent.futures
import gc
import json
import threading
import time
import weakref

import httpx

from tunesmith.monitor.analysis import monitor_log
from tunesmith.monitor.request_log import read_log, read_manifest
from tunesmith.promotion import promote
from tunesmith.serve.served import load_served
from tunesmith.serve.server import marker_loader

CHAT = {"messages": [{"role": "user", "content": "claim your cash reward"}], "max_tokens": 16}


def start_watching(start_server, marker, shadow=None, **settings):
    """A server on the run ``marker`` points to, looking at the marker every 50 ms."""
    return start_server(marker_loader(marker, shadow), watch=marker, watch_interval_s=0.05, aliases=(marker.name,),
                        max_tokens=24, **settings)


def wait_for(condition, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def ask(client: httpx.Client, url: str, turn: int) -> httpx.Response:
    """Chat, text completion and classification in turn, naming the marker (as a client of `current` does)."""
    if turn % 3 == 0:
        return client.post(f"{url}/v1/chat/completions", json={"model": "current", **CHAT})
    if turn % 3 == 1:
        return client.post(f"{url}/v1/completions", json={"model": "current", "prompt": "see you", "max_tokens": 8})
    return client.post(f"{url}/v1/classify", json={"model": "current", "text": f"free prize {turn}"})


def test_requests_during_a_swap_are_each_answered_by_the_run_they_started_on(start_server, spam_runs, tmp_path):
    a, b = spam_runs
    marker = tmp_path / "current"
    promote(a, marker, force=True)
    url, state = start_watching(start_server, marker)
    old = state.deployment
    old_weights = weakref.ref(old.served.model)
    # The old engine stops after its next step until the swap is done: what it holds is in flight across the swap.
    swapped = threading.Event()
    old.engine.on_step = lambda rows: swapped.wait(60)
    stop = threading.Event()

    def keep_asking() -> list[httpx.Response]:
        answers, turn = [], 0
        with httpx.Client(timeout=120) as client:
            while not stop.is_set():
                answers.append(ask(client, url, turn))
                turn += 1
            answers += [ask(client, url, turn + extra) for extra in range(2)]
        return answers

    with concurrent.futures.ThreadPoolExecutor(3) as pool, \
            httpx.stream("POST", f"{url}/v1/chat/completions", timeout=120,
                         json={**CHAT, "model": "current", "max_tokens": 24, "stream": True}) as streamed:
        try:
            lines = (line for line in streamed.iter_lines() if line.startswith("data: "))
            first = [json.loads(next(lines)[6:])]  # the role chunk: the generation is queued on the old engine
            wait_for(lambda: old.engine.active() == 1)  # the stream decodes on the old engine...
            clients = [pool.submit(keep_asking) for _ in range(3)]
            wait_for(lambda: old.engine.queue_depth() >= 3)  # ...and the clients' requests wait to join it
            promote(b, marker, force=True)
            wait_for(lambda: state.deployment is not old)
            now = httpx.post(f"{url}/v1/chat/completions", json={"model": "current", **CHAT}, timeout=60).json()
            assert now["model"] == b.name  # the new run answers while the old one still holds its requests
            assert not old.retired.is_set()
        finally:
            swapped.set()
            stop.set()
        rest = [json.loads(line[6:]) for line in lines if line != "data: [DONE]"]
        answers = [response for client in clients for response in client.result()]

    assert {chunk["model"] for chunk in first + rest} == {a.name} and rest[-1]["choices"][0]["finish_reason"]
    assert all(response.status_code == 200 for response in answers), [r.text for r in answers if r.is_error]
    by_run = {name: sum(response.json()["model"] == name for response in answers) for name in (a.name, b.name)}
    assert by_run[a.name] >= 3 and by_run[b.name] >= 6 and sum(by_run.values()) == len(answers)
    assert old.retired.wait(60) and not old.engine.alive
    gc.collect()
    assert old_weights() is None, "the replaced model is freed"

    records = [record for record in read_log(tmp_path / "logs") if record["kind"] == "request"]
    ids = [record["id"] for record in records]
    assert len(ids) == len(set(ids)) == len(answers) + 2  # each answer logged once, the stream and `now` too
    runs = {record["id"]: record["run"] for record in records}
    assert all(runs[response.json()["id"]] == str((tmp_path / response.json()["model"]).resolve())
               for response in answers)
    (reload,) = [record for record in read_log(tmp_path / "logs") if record["kind"] == "reload"]
    assert reload["status"] == 200 and reload["trigger"] == "watch"
    assert reload["from"][a.name] == str(a.resolve()) and reload["to"][b.name] == str(b.resolve())


def test_models_ready_and_the_manifest_name_the_run_and_the_monitor_reads_the_log(start_server, spam_runs,
                                                                                  tmp_path):
    a, b = spam_runs
    marker = tmp_path / "current"
    promote(a, marker, force=True)
    url, state = start_watching(start_server, marker)
    assert httpx.post(f"{url}/v1/classify", json={"text": "free cash"}).json()["model"] == a.name
    promote(b, marker, force=True)
    wait_for(lambda: state.served.primary == b.name)
    listed = {model["id"]: model["run"] for model in httpx.get(f"{url}/v1/models").json()["data"]}
    assert listed == {b.name: str(b.resolve()), "base": None}
    ready = httpx.get(f"{url}/ready").json()
    assert ready["runs"][b.name] == str(b.resolve()) and ready["reload_error"] is None
    answer = httpx.post(f"{url}/v1/classify", json={"text": "free cash"}).json()
    assert answer["model"] == b.name
    feedback = httpx.post(f"{url}/v1/feedback", json={"id": answer["id"], "label": "spam"}).json()
    assert feedback["run"] == str(b.resolve())
    manifest = read_manifest(tmp_path / "logs")
    assert manifest["primary"] == b.name and manifest["models"][a.name]["run"] == str(a.resolve())
    # The monitor judges the run in service by default, and the replaced one on request.
    judged = monitor_log(tmp_path / "logs")
    assert judged.model == b.name and judged.traffic["by_model"] == {a.name: 1, b.name: 1}
    assert judged.windows[0]["answered"] == 1
    before = monitor_log(tmp_path / "logs", run=a)
    assert before.model == a.name and before.windows[0]["answered"] == 1


def test_admin_reload_reloads_the_same_targets(start_server, spam_runs, tmp_path):
    a, b = spam_runs
    marker = tmp_path / "live"
    promote(a, marker, force=True)
    url, state = start_server(lambda: load_served([str(marker)]))  # not watched: the marker is read on reload
    promote(b, marker, force=True)
    assert state.served.primary == a.name
    answer = httpx.post(f"{url}/admin/reload", timeout=60)
    assert answer.status_code == 200 and answer.json()["to"] == {b.name: str(b.resolve()), "base": None}
    assert httpx.post(f"{url}/v1/chat/completions", json=CHAT).json()["model"] == b.name


def test_a_promoted_shadow_answers_and_nothing_shadows_it(start_server, spam_runs, tmp_path):
    """Shadow first, then promote: the candidate's answers are logged beside the served run's, then it serves."""
    a, b = spam_runs
    marker = tmp_path / "current"
    promote(a, marker, force=True)
    url, state = start_watching(start_server, marker, shadow=str(b))
    assert (state.served.primary, state.served.shadow) == (a.name, b.name)
    promote(b, marker, force=True)
    wait_for(lambda: state.served.primary == b.name)
    assert state.served.shadow is None and state.reload_error is None
    assert httpx.post(f"{url}/v1/chat/completions", json=CHAT).json()["model"] == b.name
