"""The server through the real `openai` client on 127.0.0.1 (tiny models): every route, streaming, errors,
concurrency, metrics, the request log, feedback, several runs on one base, a shadow."""

from __future__ import annotations

import concurrent.futures
import json
import time

import httpx
import openai
import pytest

from tunesmith.monitor import export_feedback
from tunesmith.monitor.analysis import monitor_log
from tunesmith.monitor.request_log import read_log, read_manifest
from tunesmith.serve.served import load_served


@pytest.fixture()
def spam_server(start_server, spam_runs):
    a, b = spam_runs
    url, state = start_server(lambda: load_served([str(a), str(b)]), max_tokens=24)
    return url, state, a.name, b.name


def client(url: str, key: str = "none") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


def test_chat_completion_answers_with_the_runs_template_and_counts_usage(spam_server):
    url, state, a, _ = spam_server
    reply = client(url).chat.completions.create(model=a, messages=[{"role": "user", "content": "hello"}],
                                               max_tokens=8)
    assert reply.model == a and reply.object == "chat.completion"
    assert reply.choices[0].finish_reason in ("stop", "length")
    served = state.served.models[a]
    assert served.system_prompt == "You sort messages."
    rendered = served.tokenizer.apply_chat_template(
        [{"role": "system", "content": "You sort messages."}, {"role": "user", "content": "hello"}],
        tokenize=False, add_generation_prompt=True)
    assert reply.usage.prompt_tokens == len(served.tokenizer(rendered, add_special_tokens=False)["input_ids"])
    assert 1 <= reply.usage.completion_tokens <= 8
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_streaming_gives_the_same_text_as_a_whole_answer(spam_server):
    url, _, a, _ = spam_server
    messages = [{"role": "user", "content": "win a free prize"}]
    whole = client(url).chat.completions.create(model=a, messages=messages, max_tokens=12)
    chunks = list(client(url).chat.completions.create(model=a, messages=messages, max_tokens=12, stream=True,
                                                      stream_options={"include_usage": True}))
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == whole.choices[0].finish_reason
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_completions_and_models(spam_server):
    url, _, a, b = spam_server
    reply = client(url).completions.create(model=b, prompt="see you at lunch", max_tokens=6)
    assert reply.object == "text_completion" and reply.usage.completion_tokens <= 6
    listed = {model.id for model in client(url).models.list().data}
    assert listed == {a, b, "base"}


def test_stop_strings_cut_the_answer(spam_server):
    url, _, a, _ = spam_server
    messages = [{"role": "user", "content": "claim your cash"}]
    full = client(url).chat.completions.create(model=a, messages=messages, max_tokens=20).choices[0].message.content
    assert len(full) > 4
    stop = full[2:4]
    cut = client(url).chat.completions.create(model=a, messages=messages, max_tokens=20, stop=[stop])
    assert cut.choices[0].message.content == full[:full.index(stop)]
    assert cut.choices[0].finish_reason == "stop"


def test_seeded_sampling_repeats_and_greedy_is_the_default(spam_server):
    url, _, a, _ = spam_server
    messages = [{"role": "user", "content": "lunch?"}]

    def ask(**extra):
        return client(url).chat.completions.create(model=a, messages=messages, max_tokens=10, **extra) \
            .choices[0].message.content

    assert ask(temperature=1.0, seed=5) == ask(temperature=1.0, seed=5)
    assert ask() == ask(temperature=0)


def test_concurrent_requests_each_get_what_they_get_alone(spam_server):
    url, state, a, b = spam_server
    jobs = [(model, f"message number {i}: " + "free prize " * (i % 5)) for i in range(12) for model in (a, b, "base")]

    def ask(job):
        model, text = job
        return client(url).chat.completions.create(model=model, messages=[{"role": "user", "content": text}],
                                                  max_tokens=16).choices[0].message.content

    alone = [ask(job) for job in jobs]
    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        together = list(pool.map(ask, jobs))
    assert together == alone
    assert len(set(alone)) > len(jobs) // 3  # the answers differ by prompt and model: the check has teeth
    metrics = httpx.get(f"{url}/metrics").text
    assert 'tunesmith_requests_total{route="/v1/chat/completions",status="200"} ' + f"{2 * len(jobs)}.0" in metrics
    batches = [line for line in metrics.splitlines() if line.startswith("tunesmith_batch_size_bucket")]
    assert batches and 'le="1.0"} ' not in batches[-1]
    steps = _sample(metrics, "tunesmith_batch_size_count")
    rows = _sample(metrics, "tunesmith_batch_size_sum")
    assert rows / steps > 1.5, "concurrent requests decoded together"


def _sample(metrics: str, name: str) -> float:
    return next(float(line.split()[-1]) for line in metrics.splitlines() if line.startswith(name + " "))


def test_classify_equals_evaluation(spam_server, spam_runs):
    from tunesmith.data import RunInputs
    from tunesmith.evaluate import evaluate_run
    from tunesmith.json_files import read_jsonl
    from tunesmith.run_dir import RunDir

    url, _, a, _ = spam_server
    run = RunDir(spam_runs[0])
    evaluate_run(run.config(), run, RunInputs(run.config()))
    predictions = read_jsonl(run.predictions)
    for row in predictions:
        text = row["prompt"].split("\n\n", 1)[1]
        answer = httpx.post(f"{url}/v1/classify", json={"model": a, "text": text}).json()
        assert answer["label"] == row["tuned_prediction"]
        assert set(answer["probabilities"]) == {"ham", "spam"}
        assert sum(answer["probabilities"].values()) == pytest.approx(1.0)
        assert answer["probabilities"][answer["label"]] >= 0.5


def test_errors_are_openai_style_4xx(spam_server):
    url, _, a, _ = spam_server
    chat = f"{url}/v1/chat/completions"
    cases = [
        (httpx.post(chat, content=b"{not json", headers={"content-type": "application/json"}), 400),
        (httpx.post(chat, json={"model": "nope", "messages": [{"role": "user", "content": "x"}]}), 404),
        (httpx.post(chat, json={"model": a, "messages": []}), 400),
        (httpx.post(chat, json={"model": a, "messages": [{"role": "robot", "content": "x"}]}), 400),
        (httpx.post(chat, json={"model": a, "messages": [{"role": "user", "content": "x"}], "max_tokens": 10_000}),
         400),
        (httpx.post(chat, json={"model": a, "messages": [{"role": "user", "content": "x " * 5000}]}), 400),
        (httpx.post(chat, json={"model": a, "messages": [{"role": "user", "content": "x"}], "n": 2}), 400),
        (httpx.post(chat, json={"model": a, "messages": [{"role": "user", "content": "x"}], "echo": True}), 400),
        (httpx.post(f"{url}/v1/classify", json={"model": "base", "text": ""}), 400),
        (httpx.post(f"{url}/v1/feedback", json={"id": "chatcmpl-unknown", "rating": "up"}), 404),
        (httpx.get(f"{url}/v1/nothing"), 404),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert error["message"] and "Traceback" not in error["message"]
    with pytest.raises(openai.NotFoundError):
        client(url).chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])


def test_api_key(start_server, spam_runs):
    url, _ = start_server(lambda: load_served([str(spam_runs[0])]), api_key="s3cret-key")
    messages = [{"role": "user", "content": "hi"}]
    assert client(url, "s3cret-key").chat.completions.create(model=spam_runs[0].name, messages=messages,
                                                             max_tokens=2).choices
    with pytest.raises(openai.AuthenticationError):
        client(url, "wrong").chat.completions.create(model=spam_runs[0].name, messages=messages, max_tokens=2)
    assert httpx.get(f"{url}/v1/models").status_code == 401
    assert httpx.get(f"{url}/health").status_code == 200 and httpx.get(f"{url}/ready").status_code == 200
    logged = (url and (spam_runs[0].parent / "logs" / "requests.jsonl").read_text())
    assert "s3cret" not in logged


def test_binding_beyond_loopback_needs_a_key(error_of):
    from tunesmith.serve.server import SERVER_BIND

    SERVER_BIND.check("127.0.0.1", None)
    SERVER_BIND.check("::1", None)
    SERVER_BIND.check("0.0.0.0", "key")
    assert "--api-key" in error_of(lambda: SERVER_BIND.check("0.0.0.0", None))


def test_request_log_and_feedback(spam_server, tmp_path):
    url, _, a, b = spam_server
    reply = client(url).chat.completions.create(model=a, messages=[{"role": "user", "content": "hello"}],
                                               max_tokens=4)
    label = httpx.post(f"{url}/v1/classify", json={"model": a, "text": "free prize"}).json()
    assert httpx.post(f"{url}/v1/feedback", json={"id": reply.id, "rating": "down", "correction": "Hi!"}).json()[
        "stored"]
    assert httpx.post(f"{url}/v1/feedback", json={"id": label["id"], "label": "spam"}).status_code == 200
    records = list(read_log(tmp_path / "logs"))
    answered = {record["id"]: record for record in records if record["kind"] == "request"}
    assert answered[reply.id]["answer"] == reply.choices[0].message.content
    assert answered[reply.id]["messages"] == [{"role": "user", "content": "hello"}]
    assert answered[reply.id]["prompt_tokens"] == reply.usage.prompt_tokens
    assert answered[reply.id]["ttft_s"] <= answered[reply.id]["latency_s"]
    assert answered[label["id"]]["label"] == label["label"]
    feedback = [record for record in records if record["kind"] == "feedback"]
    assert [(f["id"], f["correction"], f["label"]) for f in feedback] == [(reply.id, "Hi!", None),
                                                                          (label["id"], None, "spam")]
    manifest = read_manifest(tmp_path / "logs")
    assert manifest["primary"] == a and set(manifest["models"]) == {a, b, "base"}


def test_no_log_content_keeps_counts_only(start_server, spam_runs, tmp_path):
    url, _ = start_server(lambda: load_served([str(spam_runs[0])]), log_content=False, log_dir=tmp_path / "quiet")
    client(url).chat.completions.create(model=spam_runs[0].name, messages=[{"role": "user", "content": "secret"}],
                                        max_tokens=3)
    (record,) = [r for r in read_log(tmp_path / "quiet") if r["kind"] == "request"]
    assert "messages" not in record and "answer" not in record and record["completion_tokens"] >= 1
    assert "secret" not in (tmp_path / "quiet" / "requests.jsonl").read_text()


def test_shadow_answers_are_logged_beside_the_primary(start_server, spam_runs, tmp_path):
    a, b = spam_runs
    url, _ = start_server(lambda: load_served([str(a)], shadow=str(b)), log_dir=tmp_path / "shadowed")
    reply = client(url).chat.completions.create(model=a.name, messages=[{"role": "user", "content": "hello"}],
                                               max_tokens=6)
    label = httpx.post(f"{url}/v1/classify", json={"text": "free prize"}).json()
    alone = client(url).chat.completions.create(model=b.name, messages=[{"role": "user", "content": "hello"}],
                                               max_tokens=6)
    import time

    for _ in range(100):
        shadows = {r["id"]: r for r in read_log(tmp_path / "shadowed") if r["kind"] == "shadow"}
        if len(shadows) == 2:
            break
        time.sleep(0.05)
    assert shadows[reply.id]["model"] == b.name
    assert shadows[reply.id]["answer"] == alone.choices[0].message.content
    assert shadows[label["id"]]["label"] in ("ham", "spam")


def test_a_request_past_its_timeout_is_cancelled(start_server, spam_runs):
    url, state = start_server(lambda: load_served([str(spam_runs[0])]), request_timeout_s=0.0)
    body = {"model": spam_runs[0].name, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 50}
    response = httpx.post(f"{url}/v1/chat/completions", json=body)
    assert response.status_code == 408 and response.json()["error"]["code"] == "request_timeout"
    streamed = httpx.post(f"{url}/v1/chat/completions", json={**body, "stream": True}).text
    assert '"code": "request_timeout"' in streamed.replace('":"', '": "') and streamed.endswith("data: [DONE]\n\n")
    assert state.engine.active() == 0


# ---- the server as a process: `tunesmith serve` ---------------------------------------------------------------------


@pytest.fixture()
def serve_process(tmp_path):
    """``serve_process(*args) -> (process, url)``: `tunesmith serve ARGS` on a free port, once it is ready."""
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    from tunesmith import distributed

    started = []

    def start(*args):
        port = distributed.free_port()
        source = Path(__file__).resolve().parents[2] / "src"
        process = subprocess.Popen(
            [sys.executable, "-m", "tunesmith", "serve", *map(str, args), "--port", str(port)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONPATH": str(source), "TUNESMITH_API_KEY": ""})
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stdout.read()
            try:
                if httpx.get(f"{url}/ready").status_code == 200:
                    return process, url
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError("tunesmith serve did not become ready")

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(30)


def test_sigterm_finishes_the_request_in_flight_then_exits(serve_process, spam_runs, tmp_path):
    import signal
    import threading

    process, url = serve_process(spam_runs[0], "--log-dir", tmp_path / "log", "--max-tokens", "400")
    lines: list[str] = []
    first_chunk = threading.Event()

    def stream() -> None:
        body = {"messages": [{"role": "user", "content": "tell me everything"}], "max_tokens": 400, "stream": True}
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=60) as response:
            for line in response.iter_lines():
                lines.append(line)
                first_chunk.set()

    reader = threading.Thread(target=stream)
    reader.start()
    assert first_chunk.wait(30)
    process.send_signal(signal.SIGTERM)
    reader.join(60)
    # uvicorn finishes the request, shuts down, then re-raises the signal: the exit status says "terminated".
    assert process.wait(60) in (0, -signal.SIGTERM)
    assert [line for line in lines if line][-1] == "data: [DONE]"
    finishes = [json.loads(line[6:])["choices"][0]["finish_reason"] for line in lines
                if line.startswith("data: {")]
    assert finishes[-1] in ("stop", "length")
    (record,) = [r for r in read_log(tmp_path / "log") if r["kind"] == "request"]
    assert record["status"] == 200 and record["finish_reason"] == finishes[-1]


def test_a_killed_server_loses_no_answered_request(serve_process, spam_runs, tmp_path):
    process, url = serve_process(spam_runs[0], "--log-dir", tmp_path / "log")
    ids = [client(url).chat.completions.create(model=spam_runs[0].name, max_tokens=3,
                                               messages=[{"role": "user", "content": f"hi {i}"}]).id
           for i in range(5)]
    ids.append(httpx.post(f"{url}/v1/classify", json={"text": "free prize"}).json()["id"])
    process.kill()
    process.wait(30)
    assert [r["id"] for r in read_log(tmp_path / "log") if r["kind"] == "request"] == ids


def test_serve_refuses_a_public_address_without_a_key(spam_runs, capsys):
    from tunesmith.cli import main

    assert main(["serve", str(spam_runs[0]), "--host", "0.0.0.0"]) == 2
    assert "--api-key" in capsys.readouterr().err


@pytest.mark.slow
def test_serves_the_real_default_model_as_plain_generate_answers(start_server, default_model_dir):
    import torch
    from transformers import GenerationConfig

    from tunesmith.data.tokenize import prompt_token_ids

    url, state = start_server(lambda: load_served(["default"]))
    prompts = ["What is the capital of France?", "Give me two tips for sleeping well."]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        replies = list(pool.map(lambda prompt: client(url).chat.completions.create(
            model="default", messages=[{"role": "user", "content": prompt}], max_tokens=16), prompts))
    served = state.served
    tokenizer = served.models["default"].tokenizer
    for prompt, reply in zip(prompts, replies):
        ids = torch.tensor([prompt_token_ids(tokenizer, [{"role": "user", "content": prompt}])])
        config = GenerationConfig(max_new_tokens=16, do_sample=False, eos_token_id=sorted(served.stop_ids),
                                  pad_token_id=tokenizer.pad_token_id)
        with torch.inference_mode():
            output = served.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config)
        expected = tokenizer.decode([t for t in output[0, ids.shape[1]:].tolist() if t not in served.stop_ids],
                                    skip_special_tokens=True)
        assert reply.choices[0].message.content == expected
    assert "Paris" in replies[0].choices[0].message.content


def test_a_run_whose_checkpoints_were_deleted_is_served_from_its_export(spam_runs):
    import shutil

    from tunesmith.run_dir import RunDir

    run = RunDir(spam_runs[0])
    before = load_served([str(run.root)])
    shutil.move(str(run.best), str(run.adapter))  # as if `export` ran and checkpoints/ was deleted to free the disk
    shutil.rmtree(run.checkpoints)
    after = load_served([str(run.root)])
    weights = dict(before.model.named_parameters())
    assert all((weights[name] == value).all() for name, value in after.model.named_parameters())


def test_the_monitor_and_the_feedback_export_read_what_the_server_writes(start_server, spam_runs, tmp_path):
    """The real server's log: the monitor finds the run through served.json and judges its model's requests, the
    shadow's labels are compared, and a label given as feedback becomes a row."""
    a, b = spam_runs
    url, _ = start_server(lambda: load_served([str(a)], shadow=str(b)), log_dir=tmp_path / "logs")
    texts = [json.loads(line)["text"] for line in (tmp_path / "data" / "train.jsonl").read_text().splitlines()]
    answers = [httpx.post(f"{url}/v1/classify", json={"text": text}).json() for text in texts]
    httpx.post(f"{url}/v1/chat/completions", json={"model": a.name, "max_tokens": 3,
                                                   "messages": [{"role": "user", "content": "a question of mine"}]})
    httpx.post(f"{url}/v1/chat/completions", content=b"{not json")
    httpx.post(f"{url}/v1/feedback", json={"id": answers[0]["id"], "label": "ham"})
    for _ in range(100):  # shadows are logged when they finish, after the primary's answer
        if sum(r["kind"] == "shadow" for r in read_log(tmp_path / "logs")) == len(texts) + 1:
            break
        time.sleep(0.05)
    result = monitor_log(tmp_path / "logs", overrides=["monitor.min_requests=5"])
    traffic = result.traffic
    assert traffic["requests"] == len(texts) + 2 and traffic["errors"] == 1
    assert traffic["by_model"] == {a.name: len(texts) + 1, "(none)": 1}
    assert traffic["shadow"]["labels_compared"] == len(texts) and traffic["shadow"]["answers_compared"] == 1
    assert result.run == str(a) and result.model == a.name and result.windows[0]["answered"] == len(texts) + 1
    assert "evaluate the run" in result.reference["skipped"]  # these runs were never evaluated
    exported = export_feedback(tmp_path / "logs", tmp_path / "feedback.jsonl")
    assert exported.written == 1
    assert json.loads((tmp_path / "feedback.jsonl").read_text()) == {"text": texts[0], "label": "ham"}
