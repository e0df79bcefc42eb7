"""Serving throughput and latency: `tunesmith serve` under 1, 4 and 16 concurrent clients against the same
requests answered one at a time by plain `model.generate`.

    python benchmarks/serve_load.py [--model default] [--requests 32] [--max-tokens 48] [--clients 1,4,16]
                                    [--repeats 3] [--json]

Requests: the first ``--requests`` instructions of Alpaca (`../shared/data/alpaca_2k.jsonl`, instruction plus
input), each sent as one user turn, greedy, ``max_tokens`` = ``--max-tokens`` (answers may end earlier at the end
of turn). The model (default: SmolLM2-135M-Instruct, fp32 on the CPU) is the same in both arms.

Arms:
- generate: in this process, each request in turn through ``model.generate`` (greedy, the KV cache on, the same
  prompt tokens and stop tokens as the server); latency is the request's own generate call, the time to first
  token is when the first new token was produced (a stopping criterion's first call).
- serve@N: `tunesmith serve` in a subprocess on 127.0.0.1, N clients (asyncio, httpx) streaming chat completions
  from a shared queue of the same requests until it is empty; latency is send → last byte, time to first token is
  send → first content chunk. The server gets one warm-up request before timing.
Throughput is completion tokens (real tokens, no padding) per second of wall time of the whole set. Medians over
``--repeats``; the arms take turns within each repeat. Also: how many server answers equal generate's (batching
pads prompts, which can flip a near-tie in greedy decoding), and the server's resident memory after the run.
The last line printed is the JSON of the results.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ROOT.parent / "shared" / "data" / "alpaca_2k.jsonl"


def load_prompts(count: int) -> list[str]:
    rows = [json.loads(line) for line in PROMPTS.read_text(encoding="utf-8").splitlines()[:count]]
    return [row["instruction"] + (f"\n\n{row['input']}" if row["input"].strip() else "") for row in rows]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def generate_arm(served, prompts: list[str], max_tokens: int) -> dict:
    import torch
    from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList

    from tunesmith.data.tokenize import prompt_token_ids

    model = served.model
    tokenizer = served.models[served.primary].tokenizer
    stops = sorted(served.stop_ids)
    config = GenerationConfig(max_new_tokens=max_tokens, do_sample=False, use_cache=True, eos_token_id=stops,
                              pad_token_id=tokenizer.pad_token_id)

    class FirstToken(StoppingCriteria):
        def __init__(self):
            self.at = None

        def __call__(self, input_ids, scores, **kwargs):
            self.at = self.at or time.perf_counter()
            return torch.zeros(input_ids.shape[0], dtype=torch.bool)

    latencies, ttfts, answers, tokens = [], [], [], 0
    started_all = time.perf_counter()
    for prompt in prompts:
        ids = torch.tensor([prompt_token_ids(tokenizer, [{"role": "user", "content": prompt}])])
        first = FirstToken()
        started = time.perf_counter()
        with torch.inference_mode():
            output = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config,
                                    stopping_criteria=StoppingCriteriaList([first]))
        latencies.append(time.perf_counter() - started)
        ttfts.append(first.at - started)
        new = [token for token in output[0, ids.shape[1]:].tolist() if token not in served.stop_ids]
        tokens += len(new)
        answers.append(tokenizer.decode(new, skip_special_tokens=True))
    wall = time.perf_counter() - started_all
    return {"tokens": tokens, "wall_s": wall, "tokens_per_s": tokens / wall, "latency_p50_s": percentile(latencies, .5),
            "latency_p95_s": percentile(latencies, .95), "ttft_p50_s": percentile(ttfts, .5),
            "ttft_p95_s": percentile(ttfts, .95), "answers": answers}


async def serve_arm(url: str, prompts: list[str], max_tokens: int, clients: int) -> dict:
    import httpx

    queue: asyncio.Queue = asyncio.Queue()
    for index, prompt in enumerate(prompts):
        queue.put_nowait((index, prompt))
    answers: list[str | None] = [None] * len(prompts)
    latencies, ttfts, tokens = [], [], [0]

    async def client(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            index, prompt = queue.get_nowait()
            body = {"model": None, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
                    "stream": True, "stream_options": {"include_usage": True}}
            started = time.perf_counter()
            first, pieces = None, []
            async with http.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
                response.raise_for_status()
                async for line in response.aiter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    chunk = json.loads(line[6:])
                    if chunk.get("usage"):
                        tokens[0] += chunk["usage"]["completion_tokens"]
                    for choice in chunk.get("choices", []):
                        text = choice["delta"].get("content")
                        if text:
                            first = first or time.perf_counter()
                            pieces.append(text)
            latencies.append(time.perf_counter() - started)
            ttfts.append((first or time.perf_counter()) - started)
            answers[index] = "".join(pieces)

    started_all = time.perf_counter()
    async with httpx.AsyncClient(timeout=600) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    wall = time.perf_counter() - started_all
    return {"tokens": tokens[0], "wall_s": wall, "tokens_per_s": tokens[0] / wall,
            "latency_p50_s": percentile(latencies, .5), "latency_p95_s": percentile(latencies, .95),
            "ttft_p50_s": percentile(ttfts, .5), "ttft_p95_s": percentile(ttfts, .95), "answers": answers}


def start_server(model: str, log_dir: str) -> tuple[subprocess.Popen, str]:
    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "tunesmith", "serve", model, "--port", str(port), "--log-dir", log_dir,
         "--max-batch", "32", "--max-tokens", "512"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    url = f"http://127.0.0.1:{port}"
    for _ in range(1200):
        try:
            if httpx.get(f"{url}/ready").status_code == 200:
                httpx.post(f"{url}/v1/chat/completions", timeout=120,
                           json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4})
                return process, url
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            raise SystemExit("the server exited while starting")
        time.sleep(0.1)
    raise SystemExit("the server did not become ready in 120 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args()
    import psutil

    from tunesmith.serve import load_served

    prompts = load_prompts(args.requests)
    levels = [int(level) for level in args.clients.split(",")]
    served = load_served([args.model])
    generate_arm(served, prompts[:1], 4)  # warm-up
    runs: dict[str, list[dict]] = {"generate": []} | {f"serve@{level}": [] for level in levels}
    with tempfile.TemporaryDirectory() as log_dir:
        process, url = start_server(args.model, log_dir)
        try:
            for _ in range(args.repeats):
                runs["generate"].append(generate_arm(served, prompts, args.max_tokens))
                for level in levels:
                    runs[f"serve@{level}"].append(asyncio.run(serve_arm(url, prompts, args.max_tokens, level)))
            server_rss = psutil.Process(process.pid).memory_info().rss
        finally:
            process.terminate()
            process.wait(60)
    reference = runs["generate"][0]["answers"]
    results = {}
    for arm, repeats in runs.items():
        summary = {key: statistics.median(run[key] for run in repeats)
                   for key in ("tokens_per_s", "latency_p50_s", "latency_p95_s", "ttft_p50_s", "ttft_p95_s", "wall_s")}
        summary["tokens"] = repeats[0]["tokens"]
        summary["answers_equal_to_generate"] = sum(a == b for a, b in zip(repeats[0]["answers"], reference))
        summary["speedup_vs_generate"] = summary["tokens_per_s"] / statistics.median(
            run["tokens_per_s"] for run in runs["generate"])
        results[arm] = summary
    output = {"model": args.model, "requests": len(prompts), "max_tokens": args.max_tokens, "repeats": args.repeats,
              "cpu_threads": os.cpu_count(), "server_rss_mib": round(server_rss / 2**20), "arms": results}
    if not args.json:
        print(f"{'arm':<12} {'tok/s':>7} {'x':>5} {'p50 s':>6} {'p95 s':>6} {'ttft50':>6} {'ttft95':>6} equal")
        for arm, row in results.items():
            print(f"{arm:<12} {row['tokens_per_s']:7.1f} {row['speedup_vs_generate']:5.2f} {row['latency_p50_s']:6.2f} "
                  f"{row['latency_p95_s']:6.2f} {row['ttft_p50_s']:6.2f} {row['ttft_p95_s']:6.2f} "
                  f"{row['answers_equal_to_generate']}/{len(prompts)}")
    print(json.dumps(output))


if __name__ == "__main__":
    main()
