"""Does `tunesmith monitor` tell healthy traffic from drift? Streams of requests replayed through a real `tunesmith
serve` against evaluated classification runs, judged by `tunesmith monitor --window 50`.

    python benchmarks/drift.py --run sms_spam=RUN [--run ag_news=RUN] [--run sst2=RUN] [--window 50]
                               [--max-windows 30] [--ood-windows 4] [--source FILE] [--json-out results.json]

Each RUN is an evaluated run folder of that task (made by `tunesmith run examples/sms_spam/config.yaml` or
`tunesmith run examples/small_tasks/<task>/config.yaml`), so it holds its reference (`reference.json`) and novelty
index. Streams, each sent to a fresh server with its own log folder, in order, 8 requests at a time, through
`POST /v1/classify`:

- **in-distribution**: messages of the run's own task that the run never saw (in none of its train, validation or
  test rows): the rows of the task's files in the datasets folder beside the checkout (`../shared/data`) outside
  the run's splits, in file order, at most ``--max-windows`` windows (``--source FILE``: from that file of the
  datasets folder only, e.g. a task whose training file holds another kind of text than its test file).
- **out-of-distribution** (``--ood-windows`` windows each): another task's inputs (the shipped examples' test
  rows), long documents (the Wikipedia paragraphs of `examples/squad_rag/documents.jsonl`), and another language
  (the German captions of Multi30k).

For every stream: the windows `tunesmith monitor LOG --run RUN --window N --json` judged, how many raised any
breach and how many a novelty breach. For comparison, the lexical check the monitor used before (a window is
flagged when more than 25% of its inputs have no training input within word 3-gram Jaccard 0.3) is computed on
the same windows. Per run: ECE and Brier before and after calibration, from its eval.json. The last line printed
is the JSON of the results.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
EXAMPLES = ROOT / "examples"
SOURCES = {
    # task: (files of its real data, text field)
    "sms_spam": (["sms_spam_train.jsonl", "sms_spam_test.jsonl"], "text"),
    "ag_news": (["ag_news_train.jsonl", "ag_news_test.jsonl"], "text"),
    "sst2": (["sst2_train.jsonl", "sst2_test.jsonl"], "sentence"),
}
OTHER_TASK_FILES = {"sms_spam": EXAMPLES / "small_tasks" / "sms_spam" / "test.jsonl",
                    "ag_news": EXAMPLES / "small_tasks" / "ag_news" / "test.jsonl",
                    "sst2": EXAMPLES / "small_tasks" / "sst2" / "test.jsonl"}
LEXICAL_SIMILARITY = 0.3
LEXICAL_MAX_SHARE = 0.25
CLIENTS = 8


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def run_inputs(run: Path) -> tuple[set[str], list[str]]:
    """The texts of every row the run holds (train, validation, test), and its training inputs (last user turns
    without the instruction every row shares)."""
    from tunesmith.data.check.quality import shared_instruction
    from tunesmith.data.splits import load_run_splits
    from tunesmith.run_dir import RunDir

    splits = load_run_splits(RunDir(run).config().data)
    instruction = shared_instruction(splits.train, splits.format)  # the raw text is what follows it

    def user_text(example) -> str:
        return next(m["content"] for m in reversed(example.prompt_messages) if m["role"] == "user"
                    ).removeprefix(instruction)

    seen = {user_text(example) for part in (splits.train, splits.validation, splits.test) for example in part}
    return seen, [user_text(example) for example in splits.train]


def in_distribution(task: str, seen: set[str], limit: int, source: str | None = None) -> list[str]:
    files, field = SOURCES[task]
    files = [source] if source else files
    texts = [row[field] for name in files for row in read_jsonl(SHARED / name)]
    fresh = list(dict.fromkeys(text for text in texts if text not in seen and text.strip()))
    return fresh[:limit]


def out_of_distribution(task: str, limit: int) -> dict[str, list[str]]:
    streams = {f"{other} inputs": [row["text"] for row in read_jsonl(path)][:limit]
               for other, path in OTHER_TASK_FILES.items() if other != task}
    streams["long documents"] = [row["context"] for row in read_jsonl(EXAMPLES / "squad_rag" / "documents.jsonl")][
        :limit]
    streams["German captions"] = [row["de"] for row in read_jsonl(SHARED / "multi30k_en_de_test.jsonl")][:limit]
    return streams


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def replay(run: Path, texts: list[str], log_dir: Path) -> float:
    """Serve ``run`` with its log in ``log_dir``, send every text to /v1/classify, stop the server; the seconds
    the requests took."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "tunesmith", "serve", str(run), "--port", str(port),
                               "--log-dir", str(log_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=300) as client:
            deadline = time.monotonic() + 600
            while True:
                if server.poll() is not None:
                    raise RuntimeError(f"the server exited: {server.stderr.read()[-2000:]}")
                try:
                    if client.get("/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("the server did not get ready in 10 minutes")
                time.sleep(0.5)
            started = time.perf_counter()

            def classify(text: str) -> None:
                response = client.post("/v1/classify", json={"text": text})
                if response.status_code != 200:
                    raise RuntimeError(f"/v1/classify answered {response.status_code}: {response.text[:300]}")

            # In order, CLIENTS at a time: windows by count follow the stream's order closely.
            with ThreadPoolExecutor(CLIENTS) as pool:
                list(pool.map(classify, texts))
            return time.perf_counter() - started
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=120)
        except subprocess.TimeoutExpired:
            server.kill()


def monitor(run: Path, log_dir: Path, window: int) -> dict:
    done = subprocess.run([sys.executable, "-m", "tunesmith", "monitor", str(log_dir), "--run", str(run),
                           "--window", str(window), "--json"], capture_output=True, text=True)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"tunesmith monitor failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def judged_windows(result: dict) -> list[dict]:
    return [window for window in result["windows"] if window["figures"]["drift"].get("judged")]


def breach_checks(window: dict) -> set[str]:
    return {breach["check"] for breach in window.get("breaches") or []}


def lexical_flags(texts: list[str], training: list[str], window: int) -> list[bool]:
    """The lexical check the monitor used before, on the same windows."""
    from tunesmith.data.check.near_duplicates import near_matches

    flags = []
    for start in range(0, len(texts) - window + 1, window):
        part = texts[start:start + window]
        familiar = near_matches(part, training, LEXICAL_SIMILARITY)
        flags.append((len(part) - len(familiar)) / len(part) > LEXICAL_MAX_SHARE)
    return flags


def stream_result(run: Path, name: str, texts: list[str], training: list[str], window: int, work: Path) -> dict:
    log_dir = work / "".join(c if c.isalnum() else "_" for c in name)
    seconds = replay(run, texts, log_dir)
    windows = judged_windows(monitor(run, log_dir, window))
    lexical = lexical_flags(texts, training, window)
    novelty = [w["figures"]["drift"].get("novelty") or {} for w in windows]
    return {"stream": name, "requests": len(texts), "seconds": round(seconds, 1), "windows": len(windows),
            "flagged": sum(bool(breach_checks(w)) for w in windows),
            "flagged_by_novelty": sum("novelty" in breach_checks(w) for w in windows),
            "checks": sorted({check for w in windows for check in breach_checks(w)}),
            "novelty_tail_share": [n.get("share") for n in novelty],
            "lexical_windows": len(lexical), "lexical_flagged": sum(lexical)}


def calibration_of(run: Path) -> dict | None:
    evaluation = json.loads((run / "eval.json").read_text(encoding="utf-8"))
    calibration = evaluation.get("calibration")
    if not calibration or "before" not in calibration:
        return calibration
    return {"temperature": calibration["temperature"], "test_rows": calibration.get("test_rows"),
            **{f"{when}_{figure}": calibration[when][figure] for when in ("before", "after")
               for figure in ("ece", "ece_interval", "brier")}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="append", required=True, metavar="TASK=RUN",
                        help=f"an evaluated run of a task ({', '.join(SOURCES)})")
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--max-windows", type=int, default=30, help="in-distribution windows per run, at most")
    parser.add_argument("--ood-windows", type=int, default=4, help="windows of each out-of-distribution stream")
    parser.add_argument("--source", help="the in-distribution stream from this file of ../shared/data only")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="tunesmith-drift-") as scratch:
        for spec in args.run:
            task, _, folder = spec.partition("=")
            if task not in SOURCES:
                parser.error(f"--run {spec}: the task must be one of {', '.join(SOURCES)}")
            run = Path(folder).resolve()
            work = Path(scratch) / task
            seen, training = run_inputs(run)
            name = f"in-distribution ({args.source})" if args.source else "in-distribution"
            streams = {name: in_distribution(task, seen, args.max_windows * args.window, args.source)}
            if args.ood_windows:
                streams |= out_of_distribution(task, args.ood_windows * args.window)
            rows = []
            for name, texts in streams.items():
                print(f"{task}: {name}, {len(texts)} requests", file=sys.stderr, flush=True)
                rows.append(stream_result(run, name, texts, training, args.window, work))
            results.append({"task": task, "run": str(run), "calibration": calibration_of(run), "streams": rows})
    report = {"window": args.window, "runs": results}
    print_tables(report)
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report))
    return 0


def print_tables(report: dict) -> None:
    print(f"| run | stream | requests | windows of {report['window']} | flagged (any check) | flagged by novelty | "
          "checks that fired | old lexical check flagged |")
    print("|---|---|---:|---:|---:|---:|---|---:|")
    for run in report["runs"]:
        for row in run["streams"]:
            print(f"| {run['task']} | {row['stream']} | {row['requests']} | {row['windows']} | {row['flagged']} | "
                  f"{row['flagged_by_novelty']} | {', '.join(row['checks']) or '-'} | "
                  f"{row['lexical_flagged']} of {row['lexical_windows']} |")
    print()
    print("| run | temperature | ECE before | ECE after | Brier before | Brier after |")
    print("|---|---:|---:|---:|---:|---:|")
    for run in report["runs"]:
        c = run["calibration"] or {}
        if "before_ece" in c:
            print(f"| {run['task']} | {c['temperature']:.3f} | {c['before_ece']:.4f} | {c['after_ece']:.4f} | "
                  f"{c['before_brier']:.4f} | {c['after_brier']:.4f} |")


if __name__ == "__main__":
    sys.exit(main())
