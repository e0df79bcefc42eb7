"""How close `tunesmith plan` comes to what runs measure: training time (`train_summary.json`'s `elapsed_s`) and
peak memory (the training process's peak RSS), against the plan's probed and `--no-probe` estimates. Target:
time and memory within ±30%.

    python benchmarks/plan_accuracy.py [--tiny] [--out DIR] [--set KEY=VALUE ...]

Without `--tiny` it plans and trains the demo (`examples/sms_spam/config.yaml`) and two other configs (the SST-2
small task, the same demo with full fine-tuning and packing), each `tunesmith plan CONFIG --json` (probed, then
`--no-probe`) followed by `tunesmith train CONFIG`, one after another (never in parallel: they would share the
cores). Each command runs in its own process, so its peak RSS is its own. `--tiny` does the same with a tiny random
model on 24 rows, in seconds: it checks the script, not the estimates (a tiny model's steps are all overhead).
The last line printed is the JSON of the results.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TARGET = 0.30
MEASURE = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024, file=sys.stderr); sys.exit(code)")
"""A wrapper whose only child is the command: its RUSAGE_CHILDREN peak RSS is the command's alone."""


def tunesmith(*args: str) -> tuple[str, int]:
    """stdout and peak RSS (bytes) of one `tunesmith` command in its own process."""
    done = subprocess.run([sys.executable, "-c", MEASURE, sys.executable, "-m", "tunesmith", *args],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    if done.returncode:
        raise SystemExit(f"tunesmith {' '.join(args)} failed: {done.stderr.strip().splitlines()[-2:]}")
    return done.stdout, int(done.stderr.strip().splitlines()[-1])


def tiny_configs(folder: Path) -> dict[str, Path]:
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import _spam_examples, build_tiny_model, build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    build_tiny_model(len(tokenizer)).save_pretrained(folder / "model")
    tokenizer.save_pretrained(folder / "model")
    rows = [{"text": e.messages[0]["content"].removeprefix("Classify: "), "label": e.label}
            for e in _spam_examples(24)]
    (folder / "data.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    base = {"model": {"name": str(folder / "model")}, "data": {"path": str(folder / "data.jsonl"), "max_length": 256,
            "split": {"validation": 0.25, "test": 0.25}}, "train": {"max_steps": 6, "batch_size": 4},
            "lora": {"r": 2, "alpha": 4, "target_modules": ["q_proj", "v_proj"]}}
    variants = {"lora": {}, "full": {"method": "full"}, "packed": {"train": {"max_steps": 6, "batch_size": 2,
                                                                          "packing": True}}}
    configs = {}
    for name, change in variants.items():
        path = folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump({**base, **change}), encoding="utf-8")
        configs[name] = path
    return configs


def real_configs() -> dict[str, Path]:
    return {"demo": ROOT / "examples/sms_spam/config.yaml", "sst2": ROOT / "examples/small_tasks/sst2/config.yaml",
            "demo-full-packed": ROOT / "examples/sms_spam/config.yaml"}


REAL_OVERRIDES = {"demo-full-packed": ["method=full", "train.packing=true"]}


def plan_json(stdout: str) -> dict:
    """The plan's JSON: `tunesmith plan --json`'s whole stdout (its log goes to stderr)."""
    return json.loads(stdout)


def ratio(estimate: float, measured: float) -> float:
    return estimate / measured if measured else float("nan")


def measure(name: str, config: Path, out: Path, overrides: list[str]) -> dict:
    sets = [arg for item in overrides for arg in ("--set", item)]
    probed, _ = tunesmith("plan", str(config), "--json", *sets)
    table, _ = tunesmith("plan", str(config), "--json", "--no-probe", *sets)
    run_dir = out / name
    _, peak = tunesmith("train", str(config), "--run-dir", str(run_dir), *sets)
    summary = json.loads((run_dir / "train_summary.json").read_text(encoding="utf-8"))
    probed, table = plan_json(probed), plan_json(table)
    result = {"steps_planned": probed["counts"]["steps"], "steps_run": summary["steps"],
              "elapsed_s": summary["elapsed_s"], "peak_rss_bytes": peak}
    for kind, plan in (("probed", probed), ("table", table)):
        result[f"{kind}_time_ratio"] = ratio(plan["time"]["value"], summary["elapsed_s"])
        result[f"{kind}_memory_ratio"] = ratio(plan["memory"]["value"], peak)
    result["within_target"] = all(abs(result[f"probed_{what}_ratio"] - 1) <= TARGET for what in ("time", "memory"))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="a tiny random model: checks the script in seconds")
    parser.add_argument("--out", type=Path, help="folder for the run folders (default: a temporary one)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="plan-accuracy-"))
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TUNESMITH_CACHE", str(out / "cache"))
    configs = tiny_configs(out) if args.tiny else real_configs()
    results = {}
    for name, config in configs.items():
        results[name] = measure(name, config, out, args.overrides + REAL_OVERRIDES.get(name, []) * (not args.tiny))
        print(name, json.dumps(results[name]), flush=True)
    print(json.dumps({"tiny": args.tiny, "target": TARGET, "results": results}))


if __name__ == "__main__":
    main()
