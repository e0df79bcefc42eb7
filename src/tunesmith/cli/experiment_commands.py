"""Experiments: commands that train and score several runs to choose between them: `sweep` (hyperparameters) and
`compare-rag` (SFT, RAG, or both)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

from tunesmith.cli.arguments import add_set
from tunesmith.config import load_config
from tunesmith.run_dir import require_ours


def add_commands(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("sweep", help="hyperparameter search (Optuna) on the validation split; the best trial is "
                            "evaluated on test, exported and reported")
    p.add_argument("config", help="a run config with a sweep: section")
    p.add_argument("--resume", action="store_true", help="continue the newest sweep of this config")
    p.add_argument("--storage", metavar="URL", help="Optuna database shared by workers on several machines, e.g. "
                   "postgresql://user:pass@host/db (default: $TUNESMITH_SWEEP_STORAGE, else sweep.db in the sweep "
                   "folder)")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="local worker processes on the study")
    p.add_argument("--sweep-dir", help="the sweep folder (default: a new one under output.dir)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # a process started by --workers
    add_set(p)

    p = commands.add_parser("compare-rag", help="SFT, RAG, or both: train the fine-tunes and score base, base+RAG, "
                            "SFT and SFT+RAG on the same test questions")
    p.add_argument("config", help="a run config with a rag: section (documents, gold_column)")
    p.add_argument("--out", metavar="DIR", help="comparison folder (default: <output.dir>/<config stem>-compare-rag)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing comparison (and retrain arms whose settings changed)")
    add_set(p)


def _sweep(args: argparse.Namespace) -> int:
    from tunesmith.experiments.sweep import STORAGE_VARIABLE, prepare_sweep, run_sweep, work

    storage = args.storage or os.environ.get(STORAGE_VARIABLE) or None
    if args.sweep_dir:
        require_ours(Path(args.sweep_dir), "sweep")  # a folder of the user's own is never written into
    if args.worker:
        work(prepare_sweep(args.config, args.overrides, resume=True, storage=storage, sweep_dir=args.sweep_dir))
        return 0
    summary = run_sweep(args.config, args.overrides, resume=args.resume, storage=storage, workers=args.workers,
                        sweep_dir=args.sweep_dir)
    print(f"best trial: {summary['best_trial']} ({summary['best_value']:.6g}); run folder: {summary['best_run']}")
    if summary["finished_by"]:
        print(f"evaluated on the test split and exported by {summary['finished_by']} (not again)")
    print(f"best config: {summary['best_config']}")
    print(f"report: {summary['report_html']}")
    return 0


def _compare_rag(args: argparse.Namespace) -> int:
    from tunesmith.experiments.rag_comparison import compare_rag, comparison_folder
    from tunesmith.experiments.rag_report import scored_metrics

    config = load_config(args.config, args.overrides)
    result = compare_rag(config, args.config, args.out, args.overwrite)
    folder = comparison_folder(config, args.config, args.out)
    metrics = scored_metrics(result)  # what the report compares the arms on
    for arm, entry in result["arms"].items():
        scores = ", ".join(f"{name} {entry['metrics'][name]:.4f}" for name in metrics
                           if isinstance(entry["metrics"].get(name), float))
        print(f"{arm:9} {scores}; {entry['seconds_per_question']:.3f} s and "
              f"{entry['prompt_tokens_per_question']:.0f} prompt tokens per question")
    print(f"report: {folder / 'report.html'}")
    return 0


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "sweep": _sweep,
    "compare-rag": _compare_rag,
}
