"""The defaults on small data, as a user meets them: three small classification tasks, each a 5-line config (the
default model, the data files, nothing else), run with `tunesmith run`; the tuned model against the base model and
a TF-IDF + linear model fitted on the same training rows.

    python benchmarks/small_tasks.py [--build-only] [--tasks ag_news sst2 sms_spam] [--set KEY=VALUE ...]

Builds `examples/small_tasks/<task>/` from `../shared/data` (300 training and 400 test rows per task, stratified by
label, seeded; labels written as names), then runs the tasks one after another (never in parallel: they would
share the cores). Every run also records `train.val_metrics: [accuracy]` (the validation accuracy at every
validation; it does not change the training), and `--set` passes further overrides to every run (e.g. to try
another learning rate). The run folders go under `--out`; wall and CPU seconds are the `tunesmith run` process's.
The last line printed is the JSON of the results.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
EXAMPLES = ROOT / "examples" / "small_tasks"
TRAIN_ROWS = 300
TEST_ROWS = 400
SEED = 0
TASKS = {
    # task: (shared train file, shared test file, text field, label names by integer label)
    "ag_news": ("ag_news_train.jsonl", "ag_news_test.jsonl", "text", ["World", "Sports", "Business", "Sci/Tech"]),
    "sst2": ("sst2_train.jsonl", "sst2_test.jsonl", "sentence", ["negative", "positive"]),
    "sms_spam": ("sms_spam_train.jsonl", "sms_spam_test.jsonl", "text", ["ham", "spam"]),
}
BASELINES = ("tfidf_logreg", "tfidf_svm")
CONFIG = """model:
  name: default
data:
  train: train.jsonl
  test: test.jsonl
"""


def stratified(rows: list[dict], count: int, seed: int) -> list[dict]:
    """``count`` rows with each label's share of ``rows`` (largest remainders), seeded, in a seeded order."""
    rng = random.Random(seed)
    by_label: dict[int, list[dict]] = defaultdict(list)
    for row in rows:
        by_label[row["label"]].append(row)
    exact = {label: count * len(group) / len(rows) for label, group in by_label.items()}
    quota = {label: int(share) for label, share in exact.items()}
    largest_remainders = sorted(exact, key=lambda label: exact[label] - quota[label], reverse=True)
    for label in largest_remainders[:count - sum(quota.values())]:
        quota[label] += 1
    chosen = [row for label in sorted(by_label) for row in rng.sample(by_label[label], quota[label])]
    rng.shuffle(chosen)
    return chosen


def build(task: str) -> Path:
    """Write the task's folder: train.jsonl, test.jsonl (``{"text", "label"}`` with label names) and config.yaml."""
    train_file, test_file, text_field, names = TASKS[task]
    folder = EXAMPLES / task
    folder.mkdir(parents=True, exist_ok=True)
    for source, count, target in ((train_file, TRAIN_ROWS, "train.jsonl"), (test_file, TEST_ROWS, "test.jsonl")):
        rows = [json.loads(line) for line in (SHARED / source).read_text(encoding="utf-8").splitlines()]
        picked = stratified(rows, count, SEED)
        lines = [json.dumps({"text": row[text_field], "label": names[row["label"]]}, ensure_ascii=False)
                 for row in picked]
        (folder / target).write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "config.yaml").write_text(CONFIG, encoding="utf-8")
    return folder


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def tfidf_baselines(config_path: Path) -> dict:
    """TF-IDF (word 1-2 grams) + logistic regression (classes balanced) and + linear SVM, as `evaluate.baselines`
    builds them, fitted on the rows the run trains on (its training split) and scored on its test rows by the
    same metrics as the tuned model."""
    from tunesmith.config import load_config
    from tunesmith.data.run_inputs import RunInputs
    from tunesmith.evaluate.baselines import baseline_scores, run_baselines

    config = load_config(config_path)
    inputs = RunInputs(config)
    splits, task = inputs.splits, inputs.task
    results = run_baselines(list(BASELINES), task, splits, config.data, config.train.seed)
    scores = {result.name: baseline_scores(result, task, splits.test) for result in results}
    return {name: {"accuracy": score["accuracy"], "f1": score["f1"],
                   "seconds": round(score["train_seconds"] + score["predict_seconds"], 2)}
            for name, score in scores.items()}


def run_task(task: str, out: Path, overrides: list[str]) -> dict:
    config_path = EXAMPLES / task / "config.yaml"
    run_dir = out / task
    command = [sys.executable, "-m", "tunesmith", "run", str(config_path), "--set", f"output.dir={out}",
               "--set", f"output.name={task}", "--set", "train.val_metrics=[accuracy]"]
    for override in overrides:
        command += ["--set", override]
    started, cpu_before = time.perf_counter(), _children_cpu_s()
    subprocess.run(command, check=True)
    wall, cpu = time.perf_counter() - started, _children_cpu_s() - cpu_before
    evaluation = json.loads((run_dir / "eval.json").read_text())
    summary = json.loads((run_dir / "train_summary.json").read_text())
    timings = json.loads((run_dir / "timings.json").read_text())
    metrics = read_jsonl(run_dir / "metrics.jsonl")
    return {
        "train_rows": summary["train_rows"], "validation_rows": summary["validation_rows"],
        "test_rows": evaluation["num_examples"], "budget": summary.get("budget"), "steps": summary["steps"],
        "best_step": summary["best_step"], "best_val_metrics": summary.get("best_val_metrics"),
        "tuned": {name: evaluation["tuned"][name] for name in ("accuracy", "f1")},
        "base": {name: evaluation["base"][name] for name in ("accuracy", "f1")},
        "baselines": tfidf_baselines(config_path),
        "validations": [{key: value for key, value in line.items() if key == "step" or key.startswith("val_")}
                        for line in metrics if "val_loss" in line],
        "train_s": timings["train"], "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
    }


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    parser.add_argument("--build-only", action="store_true", help="write the example folders and stop")
    parser.add_argument("--baselines-only", action="store_true", help="score the TF-IDF baselines alone")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "small_tasks")
    args = parser.parse_args()
    for task in args.tasks:
        build(task)
    if args.build_only:
        return
    if args.baselines_only:
        print(json.dumps({task: tfidf_baselines(EXAMPLES / task / "config.yaml") for task in args.tasks}))
        return
    results = {"overrides": args.overrides}
    for task in args.tasks:
        results[task] = run_task(task, args.out, args.overrides)
        print(json.dumps({task: results[task]}), flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
