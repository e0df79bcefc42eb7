"""The improvement loop, end to end, in one command:

    python examples/sms_loop/loop.py [--out loop-runs] [--port 8100] [--budget 40]

1. `tunesmith run` round 1 (config.yaml on `round1_train.jsonl`, which lacks the held-out spam style; the run ends
   with its gate), then `tunesmith promote` it: the `current` marker points at it.
2. `tunesmith serve current --watch`: the server answers with the run the marker names.
3. Replay the stream (`stream.jsonl`): 100 normal messages, then the shifted part, where the style arrives.
4. `tunesmith monitor --window 100`: the first window holds, the shifted one breaches.
5. `tunesmith label create --budget N`: the requests most worth labelling; then the shifted slice
   (`shifted_slice.jsonl`, never in the log before the queue is made) is replayed: round 1's answers to it.
6. The annotators are simulated: each queued item gets its gold label from `stream.jsonl` (the labels prepare.py
   kept). `tunesmith label export` writes them as training rows.
7. Round 2's data is round 1's plus the labelled rows (two `data.sources`, beside the same validation and test
   files); `tunesmith data check` must find no test row leaked from it (else the loop stops), then `tunesmith run`
   round 2.
8. `tunesmith gate round-2 --against round-1`; when it passes, `tunesmith promote round-2`; the server swaps
   (`/v1/models` names round 2) and the shifted slice is replayed again.
9. The before/after table (the shifted slice, and the gold test set from both runs' `predictions.jsonl`) is printed
   and written to OUT/before_after.md; each step's seconds to OUT/timings.json.

Everything is written under OUT (default `loop-runs/` in the current folder), never into examples/. Each
tunesmith command's output goes to the console and to OUT/logs/<step>.log.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import before_after  # noqa: E402  (this example's own module, beside this file)

HERE = Path(__file__).resolve().parent
TUNESMITH = [sys.executable, "-m", "tunesmith"]
WINDOW = 100
"""Requests per monitor window: the stream's normal part is exactly one."""
CLIENTS = 4
"""Requests in flight during a replay (the server batches them)."""


class LoopError(Exception):
    """A step of the loop that cannot go on; the message says which and why."""


class Loop:
    """The loop's folder, its server and the seconds of each step."""

    def __init__(self, out: Path, port: int):
        self.out = out.resolve()
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.runs = self.out / "runs"
        self.marker = self.runs / "current"
        self.log_dir = self.out / "serve_logs"
        self.timings: dict[str, float] = {}
        self.server: subprocess.Popen | None = None
        for folder in (self.out / "logs", self.out / "replays"):
            folder.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        print(f"\n== {name}", flush=True)
        started = time.monotonic()
        try:
            yield
        finally:
            self.timings[name] = round(time.monotonic() - started, 1)
            (self.out / "timings.json").write_text(json.dumps(self.timings, indent=2) + "\n", encoding="utf-8")
            print(f"== {name}: {self.timings[name]:.0f} s", flush=True)

    def tunesmith(self, log: str, *args: str, ok: tuple[int, ...] = (0,)) -> int:
        """Runs `tunesmith ARGS`, its output to the console and OUT/logs/LOG.log; returns the exit code, which must
        be one of ``ok``."""
        command = [*TUNESMITH, *args]
        print("$ tunesmith " + " ".join(args), flush=True)
        with open(self.out / "logs" / f"{log}.log", "w", encoding="utf-8") as file:
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            assert process.stdout is not None
            for line in process.stdout:
                sys.stdout.write(line)
                file.write(line)
            code = process.wait()
        if code not in ok:
            raise LoopError(f"`tunesmith {' '.join(args)}` exited {code} (OUT/logs/{log}.log has its output)")
        return code

    # ---- the server ----------------------------------------------------------------------------------------------

    def start_server(self) -> None:
        log = open(self.out / "logs" / "serve.log", "w", encoding="utf-8")
        args = ["serve", str(self.marker), "--watch", "--port", str(self.port), "--log-dir", str(self.log_dir)]
        print("$ tunesmith " + " ".join(args), flush=True)
        self.server = subprocess.Popen([*TUNESMITH, *args], stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: self.server.poll() is not None or get_json(self.url + "/ready") is not None, 600,
                   "the server to load round 1")
        if self.server.poll() is not None:
            raise LoopError(f"the server exited {self.server.returncode} (OUT/logs/serve.log says why)")

    def stop_server(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            self.server.wait(timeout=120)

    def served_runs(self) -> list[str]:
        """The names /v1/models lists (the served runs, and `base` beside adapter runs)."""
        models = get_json(self.url + "/v1/models") or {}
        return [model["id"] for model in models.get("data", [])]

    def replay(self, name: str, rows: list[dict]) -> list[dict]:
        """Sends each row's text to /v1/classify; returns and writes (OUT/replays/NAME.jsonl) each answer beside
        the row's gold label, with the run that answered."""
        def ask(row: dict) -> dict:
            answer = post_json(self.url + "/v1/classify", {"text": row["text"]})
            return {"text": row["text"], "gold": row["label_text"], "label": answer["label"],
                    "confidence": answer.get("confidence"), "run": answer["model"]}

        with ThreadPoolExecutor(CLIENTS) as pool:
            answers = list(pool.map(ask, rows))
        write_jsonl(self.out / "replays" / f"{name}.jsonl", answers)
        right = sum(a["label"] == a["gold"] for a in answers)
        print(f"{name}: {len(answers)} requests answered by {sorted({a['run'] for a in answers})}; "
              f"{right} right ({right / len(answers):.3f})", flush=True)
        return answers

    # ---- runs and data -------------------------------------------------------------------------------------------

    def round_config(self, name: str, labels: Path | None = None) -> Path:
        """This example's config with absolute data paths and its run folder OUT/runs/NAME, written to
        OUT/NAME.yaml. With ``labels`` (`label export`'s rows) the training data is two `data.sources`: round 1's
        rows, then the labelled rows, which carry tunesmith's own column names (`label`, not this data's
        `label_text`), so their entry undoes `data.columns`. The validation and test files stay as they are."""
        config = yaml.safe_load((HERE / "config.yaml").read_text(encoding="utf-8"))
        data = config["data"]
        for key in ("train", "validation", "test"):
            data[key] = str((HERE / data[key]).resolve())
        if labels is not None:
            undone = {field: field for field in data["columns"]}
            data["sources"] = [{"path": data.pop("train")}, {"path": str(labels), "columns": undone}]
        config["output"] = {"dir": str(self.runs), "name": name}
        path = self.out / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        return path

    def test_leakage(self, config: Path) -> list[dict]:
        """The `leakage` findings of `tunesmith data check` on the config's test split (test rows in or near its
        training rows), as its JSON report gives them."""
        from tunesmith.data import run_check

        text, _ = run_check(str(config), [], True)
        (self.out / "logs" / f"data-check-{config.stem}.json").write_text(text + "\n", encoding="utf-8")
        return [f for f in json.loads(text)["findings"] if f["kind"] == "leakage" and f["split"] == "train/test"]


def gate_verdict(loop: Loop, run: Path, log: str, *args: str) -> None:
    """Runs a command that ends with the run's gate (`tunesmith run` with `gate:` set, or `tunesmith gate`); a failed
    gate (exit 1) stops the loop with the gate's one line."""
    from tunesmith.results.gate import gate_line, read_gate
    from tunesmith.run_dir import RunDir

    if loop.tunesmith(log, *args, ok=(0, 1)) == 1:
        raise LoopError(f"{run.name}: {gate_line(read_gate(RunDir(run).gate_json))} (OUT/logs/{log}.log)")


def label_from_gold(queue_path: Path, gold: dict[str, str]) -> int:
    """Labels every item of the queue with its gold label (the simulated annotator `gold`); returns the count."""
    from tunesmith.label import LabelQueue

    with LabelQueue.open(queue_path) as queue:
        items = queue.items()
        for item in items:
            if item.input not in gold:
                raise LoopError(f"queued request {item.request_id} is not a stream row: {item.input[:60]!r}")
            queue.annotate(item.id, "gold", gold[item.input])
    return len(items)


def run_loop(loop: Loop, budget: int, strategy: str) -> str:
    stream = read_jsonl(HERE / "stream.jsonl")
    held_out = read_jsonl(HERE / "shifted_slice.jsonl")
    round1, round2 = loop.runs / "round-1", loop.runs / "round-2"

    with loop.step("round 1: tunesmith run"):
        gate_verdict(loop, round1, "run-round-1", "run", str(loop.round_config("round-1")))
    with loop.step("round 1: promote"):
        loop.tunesmith("promote-round-1", "promote", str(round1), "--marker", str(loop.marker))
    with loop.step("serve --watch"):
        loop.start_server()
    with loop.step("replay the stream"):
        loop.replay("stream-normal", [row for row in stream if row["part"] == "normal"])
        loop.replay("stream-shifted", [row for row in stream if row["part"] == "shifted"])
    with loop.step("monitor"):
        code = loop.tunesmith("monitor", "monitor", str(loop.log_dir), "--run", str(round1), "--window",
                              str(WINDOW), "--html", str(loop.out / "monitor.html"), ok=(0, 1))
        if code == 0:
            raise LoopError("the monitor flagged no window: the shift went unnoticed (OUT/logs/monitor.log)")
    queue = loop.out / "labeling" / "queue.db"
    with loop.step("label create"):
        loop.tunesmith("label-create", "label", "create", str(loop.log_dir), "--run", str(round1), "--budget",
                       str(budget), "--strategy", strategy, "--out", str(queue))
    with loop.step("replay the shifted slice to round 1"):
        before = loop.replay("slice-round-1", held_out)
    labels = loop.out / "labels.jsonl"
    with loop.step("label (simulated from the gold labels) and export"):
        print(f"{label_from_gold(queue, {row['text']: row['label_text'] for row in stream})} items labelled")
        loop.tunesmith("label-export", "label", "export", str(queue), str(labels))
    config2 = loop.round_config("round-2", labels)
    with loop.step("round 2: data check (test leakage)"):
        for leaked in loop.test_leakage(config2):
            raise LoopError(f"round 2's training rows leak test rows: {leaked['message']}; first: "
                            f"{leaked['locations'][0]} (`tunesmith data check {config2}`)")
        print("no test row leaked from round 2's training rows")
    with loop.step("round 2: tunesmith run"):
        gate_verdict(loop, round2, "run-round-2", "run", str(config2))
    with loop.step("gate round 2 --against round 1"):
        gate_verdict(loop, round2, "gate", "gate", str(round2), "--against", str(round1))
    with loop.step("promote round 2; the server swaps"):
        loop.tunesmith("promote-round-2", "promote", str(round2), "--marker", str(loop.marker))
        wait_until(lambda: round2.name in loop.served_runs() and round1.name not in loop.served_runs(), 600,
                   "the server to swap round 1 for round 2")
    with loop.step("replay the shifted slice to round 2"):
        after = loop.replay("slice-round-2", held_out)
    truths, test_before, test_after = before_after.test_set_answers(round1 / "predictions.jsonl",
                                                                    round2 / "predictions.jsonl")
    comparisons = [
        before_after.compare("shifted slice (held-out spam style)", [a["gold"] for a in before],
                             [a["label"] for a in before], [a["label"] for a in after]),
        before_after.compare("original test set (examples/sms_spam/test.jsonl)", truths, test_before, test_after),
    ]
    return before_after.write(loop.out, comparisons, round1.name, round2.name)


# ---- small helpers ---------------------------------------------------------------------------------------------


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


def get_json(url: str) -> dict | None:
    """The JSON body of a 200 answer; None while the server is not up or not ready."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())
    except (OSError, ValueError):
        return None


def post_json(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=300) as response:
        return json.loads(response.read())


def wait_until(done, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            raise LoopError(f"waited {seconds:.0f} s for {what}")
        time.sleep(1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("loop-runs"), help="folder for everything the loop writes")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--budget", type=int, default=40, help="requests to label (tunesmith label create --budget)")
    parser.add_argument("--strategy", default="mixed", choices=["uncertainty", "novelty", "mixed"])
    args = parser.parse_args(argv)
    if args.out.resolve().is_relative_to(HERE.parent):
        parser.error("--out must lie outside examples/")
    if (args.out / "runs").exists():
        parser.error(f"{args.out} already holds a loop's runs: give a new --out")
    loop = Loop(args.out, args.port)
    started = time.monotonic()
    try:
        table = run_loop(loop, args.budget, args.strategy)
    except LoopError as error:
        print(f"loop stopped: {error}", file=sys.stderr)
        return 1
    finally:
        loop.stop_server()
        loop.timings["total"] = round(time.monotonic() - started, 1)
        (loop.out / "timings.json").write_text(json.dumps(loop.timings, indent=2) + "\n", encoding="utf-8")
    print("\n" + table)
    print(f"\nthe loop took {loop.timings['total'] / 60:.1f} min; {loop.out} holds its runs, logs and tables")
    return 0


if __name__ == "__main__":
    sys.exit(main())
