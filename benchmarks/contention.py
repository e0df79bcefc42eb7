"""A fair share of a busy machine: `tunesmith train` alone, beside a second training, and beside a loaded
`tunesmith serve`, under each setting of threads and OpenMP wait policy under test.

    python benchmarks/contention.py [--arms alone,training,serve] [--setting before=all:unset]
                                    [--setting after=auto:passive] [--seconds 40] [--repeats 3] [--json] [--out FILE]

A setting is ``NAME=THREADS:WAIT`` (THREADS: ``auto``, ``all`` or a number, as `train.threads`; WAIT: ``unset``
(OpenMP's own default), ``passive`` or ``active``, as ``OMP_WAIT_POLICY``); it applies to every process of the
measurement, the neighbour too, as when both run the same tunesmith. ``before`` is tunesmith before `train.threads:
auto` (every core, OpenMP's default waits), ``after`` its defaults now.

The measured training: SmolLM2-135M-Instruct (`model.name: default`, fp32, LoRA r=16 on every projection), SMS
spam classification rows, batch 8, max_length 128, through the real CLI (`python -m tunesmith train`, so the CLI's
own environment settings apply). Its speed is real (non-padding) tokens per second of step time, from its
metrics.jsonl, over the steps after the first two (warm-up), until ``--seconds`` of such steps; then it is stopped.
Arms:
- alone: nothing else of ours runs;
- training: a second, identical training starts first and is past its warm-up before the measured one starts;
- serve: `tunesmith serve` of the same base model, with 4 clients in this process (asyncio, httpx) streaming chat
  completions of Alpaca instructions (max_tokens 32) back to back from before the training starts until it ends.
Each arm also reports its neighbour's speed over the same time (training tokens/s, or completion tokens/s).
Medians over ``--repeats``; within each repeat, the arms and settings take turns, so every setting sees the same
foreign load. ``ratio`` is an arm's median over its own setting's alone median (the target: >= 0.4 beside one busy
job). The last line printed is the JSON of the results (``--out`` writes it too).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TUNESMITH_SHARED_DATA", ROOT.parent / "shared" / "data"))
"""The shared data sets (`../shared/data` beside the repository; the variable points elsewhere)."""
WARMUP_STEPS = 2
CLIENTS = 4
WAITS = ("unset", "passive", "active")


def training_config(out: Path) -> dict:
    return {
        "model": {"name": "default"},
        "data": {"path": str(SHARED / "sms_spam_train.jsonl"), "format": "classification",
                 "columns": {"label": "label_text"}, "system_prompt": "Classify each SMS message as ham or spam.",
                 "instruction": "", "split": {"validation": 0.0, "test": 0.0, "seed": 0}, "max_length": 128,
                 "max_train_rows": 2000},
        "method": "lora",
        "lora": {"r": 16, "alpha": 32, "dropout": 0.0,
                 "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]},
        "train": {"learning_rate": 2e-4, "max_steps": 100000, "batch_size": 8, "warmup_ratio": 0.0,
                  "scheduler": "constant", "seed": 0, "eval_every": 10**6, "save_every": 10**6,
                  "group_by_length": True},
        "output": {"dir": str(out)},
    }


# ---- children: the real CLI, with the setting's environment ------------------------------------------------------


def child(args: argparse.Namespace) -> None:
    """Run the CLI with ``args.rest`` under the setting: importing `tunesmith.cli` applies its own environment
    defaults first (as `tunesmith` does), then the setting overrides them, still before torch loads."""
    import tunesmith.cli

    if args.wait == "unset":
        os.environ.pop("OMP_WAIT_POLICY", None)
    else:
        os.environ["OMP_WAIT_POLICY"] = args.wait.upper()
    if args.child == "serve" and args.threads != "auto":  # serve has no threads setting: it always takes `auto`
        import tunesmith.serve.server as server
        from tunesmith.threads import use_threads

        setting = args.threads if args.threads == "all" else int(args.threads)
        server.use_threads = lambda _: use_threads(setting)
    sys.exit(tunesmith.cli.main(args.rest))


def spawn(role: str, threads: str, wait: str, rest: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, __file__, "--child", role, "--threads", threads, "--wait", wait, "--", *rest],
        stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src"), "TRANSFORMERS_VERBOSITY": "error"})


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def start_training(work: Path, name: str, threads: str, wait: str) -> tuple[subprocess.Popen, Path]:
    config = work / "config.json"
    if not config.exists():
        config.write_text(json.dumps(training_config(work / "runs")))
    run = work / name
    rest = ["train", str(config), "--run-dir", str(run), "--set", f"train.threads={threads}"]
    return spawn("train", threads, wait, rest, work / f"{name}.log"), run / "metrics.jsonl"


def steps_of(metrics: Path) -> list[dict]:
    if not metrics.exists():
        return []
    # A line being written is incomplete: only whole lines with a loss are steps.
    return [json.loads(line) for line in metrics.read_text().splitlines() if line.endswith("}") and '"loss"' in line]


def wait_for_steps(process: subprocess.Popen, metrics: Path, count: int, log: Path, timeout_s: float = 900) -> None:
    deadline = time.monotonic() + timeout_s
    while len(steps_of(metrics)) < count:
        if process.poll() is not None:
            raise SystemExit(f"a training exited early:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise SystemExit(f"a training logged no step {count} in {timeout_s:.0f} s")
        time.sleep(0.5)


def speed(steps: list[dict]) -> tuple[float, float]:
    """``(real tokens/s, step seconds)`` over ``steps``."""
    tokens = sum(step["tokens"] for step in steps)
    seconds = sum(step["tokens"] / step["tokens_per_s"] for step in steps)
    return tokens / seconds, seconds


def measure(process: subprocess.Popen, metrics: Path, seconds: float, log: Path) -> dict:
    """The measured training's speed over its steps after warm-up, once they add up to ``seconds``."""
    wait_for_steps(process, metrics, WARMUP_STEPS, log)
    started = time.monotonic()
    while True:
        timed = steps_of(metrics)[WARMUP_STEPS:]
        if timed and speed(timed)[1] >= seconds:
            break
        if process.poll() is not None:
            raise SystemExit(f"the measured training exited:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    tokens_per_s, _ = speed(timed)
    return {"tokens_per_s": tokens_per_s, "steps": len(timed), "wall_s": time.monotonic() - started}


# ---- the serve neighbour -----------------------------------------------------------------------------------------


def start_server(work: Path, threads: str, wait: str) -> tuple[subprocess.Popen, str]:
    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = work / "serve.log"
    process = spawn("serve", threads, wait, ["serve", "default", "--port", str(port), "--log-dir",
                                             str(work / "serve_logs")], log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ready").status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            raise SystemExit(f"the server exited while starting:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    raise SystemExit("the server was not ready in 300 s")


class Clients:
    """``CLIENTS`` clients streaming chat completions back to back, in a thread of this process, counting the
    completion tokens they receive."""

    def __init__(self, url: str):
        rows = [json.loads(line) for line in (SHARED / "alpaca_2k.jsonl").read_text().splitlines()[:64]]
        self.prompts = [row["instruction"] for row in rows]
        self.url, self.tokens, self.stopping = url, 0, threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> Clients:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.thread.join(120)

    async def _run(self) -> None:
        import httpx

        async with httpx.AsyncClient(timeout=600) as http:
            await asyncio.gather(*(self._client(http, index) for index in range(CLIENTS)))

    async def _client(self, http, index: int) -> None:
        while not self.stopping.is_set():
            prompt = self.prompts[index % len(self.prompts)]
            index += CLIENTS
            body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": 32, "stream": False}
            response = await http.post(f"{self.url}/v1/chat/completions", json=body)
            response.raise_for_status()
            self.tokens += response.json()["usage"]["completion_tokens"]


# ---- arms --------------------------------------------------------------------------------------------------------


def run_arm(arm: str, threads: str, wait: str, seconds: float) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        neighbour, clients = None, None
        try:
            if arm == "training":
                neighbour, other = start_training(work, "neighbour", threads, wait)
                wait_for_steps(neighbour, other, WARMUP_STEPS, work / "neighbour.log")
            elif arm == "serve":
                neighbour, url = start_server(work, threads, wait)
                clients = Clients(url).__enter__()
            process, metrics = start_training(work, "measured", threads, wait)
            try:
                before = (len(steps_of(other)) if arm == "training" else clients.tokens if clients else 0,
                          time.monotonic())
                result = measure(process, metrics, seconds, work / "measured.log")
                result["threads_used"] = _threads_logged(work / "measured.log")
                if arm == "training":
                    result["neighbour_tokens_per_s"] = speed(steps_of(other)[before[0]:])[0]
                elif arm == "serve":
                    result["neighbour_tokens_per_s"] = (clients.tokens - before[0]) / (time.monotonic() - before[1])
            finally:
                stop(process)
        finally:
            if clients:
                clients.__exit__()
            if neighbour:
                stop(neighbour)
    return result


def _threads_logged(log: Path) -> int | None:
    """The CPU threads the training's log line says it took (``device cpu, N CPU threads, ...``)."""
    for line in log.read_text(errors="replace").splitlines():
        if "CPU threads" in line:
            words = line.split("CPU threads")[0].split()
            return int(words[-1]) if words and words[-1].isdigit() else None
    return None


def parse_setting(text: str) -> tuple[str, str, str]:
    name, _, value = text.partition("=")
    threads, _, wait = value.partition(":")
    if not name or not threads or wait not in WAITS:
        raise SystemExit(f"--setting {text!r}: expected NAME=THREADS:WAIT, WAIT one of {', '.join(WAITS)}")
    return name, threads, wait


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", choices=["train", "serve"], help=argparse.SUPPRESS)
    parser.add_argument("--threads", default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--wait", default="passive", choices=WAITS, help=argparse.SUPPRESS)
    parser.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--arms", default="alone,training,serve")
    parser.add_argument("--setting", action="append", default=[], metavar="NAME=THREADS:WAIT",
                        help="a setting under test (repeatable; default: before=all:unset and after=auto:passive)")
    parser.add_argument("--seconds", type=float, default=40.0, help="timed step seconds per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    parser.add_argument("--out", help="also write the JSON to this file")
    args = parser.parse_args()
    if args.child:
        return child(args)
    settings = [parse_setting(text) for text in args.setting or ["before=all:unset", "after=auto:passive"]]
    arms = args.arms.split(",")
    runs: dict[tuple[str, str], list[dict]] = {(name, arm): [] for name, _, _ in settings for arm in arms}
    for repeat in range(args.repeats):
        for arm in arms:
            for name, threads, wait in settings:
                result = run_arm(arm, threads, wait, args.seconds)
                runs[name, arm].append(result)
                if not args.json:
                    print(f"repeat {repeat + 1} {name:<8} {arm:<9} {result['tokens_per_s']:7.1f} tok/s "
                          f"({result['threads_used']} threads; neighbour "
                          f"{result.get('neighbour_tokens_per_s', 0):.1f} tok/s)", flush=True)
    results: dict[str, dict] = {}
    for name, threads, wait in settings:
        rows = {}
        for arm in arms:
            repeats = runs[name, arm]
            rows[arm] = {"tokens_per_s": statistics.median(r["tokens_per_s"] for r in repeats),
                         "all_tokens_per_s": [round(r["tokens_per_s"], 1) for r in repeats],
                         "threads_used": [r["threads_used"] for r in repeats]}
            if arm != "alone":
                rows[arm]["neighbour_tokens_per_s"] = statistics.median(r["neighbour_tokens_per_s"] for r in repeats)
        if "alone" in rows:
            for row in rows.values():
                row["ratio"] = row["tokens_per_s"] / rows["alone"]["tokens_per_s"]
        results[name] = {"threads": threads, "wait_policy": wait, "arms": rows}
    output = {"machine": {"cores": len(os.sched_getaffinity(0)), "load_average": os.getloadavg()},
              "date": time.strftime("%Y-%m-%d %H:%M"), "seconds": args.seconds, "repeats": args.repeats,
              "settings": results}
    if not args.json:
        for name, result in results.items():
            for arm, row in result["arms"].items():
                print(f"{name:<8} {arm:<9} {row['tokens_per_s']:7.1f} tok/s  ratio {row.get('ratio', 0):.2f}")
    if args.out:
        Path(args.out).write_text(json.dumps(output, indent=1) + "\n")
    print(json.dumps(output))


if __name__ == "__main__":
    main()
