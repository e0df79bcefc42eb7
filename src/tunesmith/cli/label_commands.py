"""The labeling queue (active learning): `label create`, `label stats`, `label export`."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable

from tunesmith.errors import ConfigError
from tunesmith.run_dir import check_out_target

DEFAULT_KEY_VARIABLE = "OPENAI_API_KEY"


def add_commands(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("label", help="a queue of served requests worth labeling, several annotators, and the "
                                          "training rows their labels give")
    label_commands = p.add_subparsers(dest="label_command", required=True, metavar="SUBCOMMAND")

    q = label_commands.add_parser(
        "create", help="pick the least confident / most novel requests of a request log into a labeling queue")
    q.add_argument("log_dir", help="the log folder of `tunesmith serve` (a run's serve_logs/ or its --log-dir)")
    q.add_argument("--run", help="run whose model answered the requests (default: the primary model's run in the "
                                 "log folder's served.json)")
    q.add_argument("--budget", type=int, default=100, help="requests to pick at most (default: 100)")
    q.add_argument("--strategy", choices=["uncertainty", "novelty", "mixed"], default="uncertainty",
                   help="uncertainty: least confident first; novelty: most novel first; mixed: the two in turn "
                        "(default: uncertainty)")
    q.add_argument("--out", metavar="QUEUE.db", help="queue file to write (default: <run>/labeling/queue.db)")
    q.add_argument("--overwrite", action="store_true", help="replace an existing queue and its annotations")
    q.add_argument("--teacher", metavar="URL", help="an OpenAI-compatible server (e.g. another `tunesmith serve`) "
                                                    "whose suggestion is shown beside each item")
    q.add_argument("--teacher-model", metavar="NAME", help="the model name the teacher serves")
    q.add_argument("--teacher-key-env", metavar="VARIABLE", default=DEFAULT_KEY_VARIABLE,
                   help="environment variable holding the teacher's API key, sent as `Authorization: Bearer` "
                        f"(default: {DEFAULT_KEY_VARIABLE}; unset sends none)")
    q.add_argument("--teacher-timeout", type=float, default=60.0, help="seconds to wait for each suggestion")

    q = label_commands.add_parser("stats", help="annotators' counts, their agreement (kappa), agreement with the "
                                                "teacher")
    q.add_argument("queue", help="the queue file (e.g. RUN/labeling/queue.db)")
    q.add_argument("--json", action="store_true", help="print the statistics as one JSON object")

    q = label_commands.add_parser("export", help="write the labels as training rows in the run's own data format")
    q.add_argument("queue", help="the queue file")
    q.add_argument("output_path", metavar="OUT", help="JSON Lines file to write (*.jsonl)")
    q.add_argument("--overwrite", action="store_true", help="replace OUT when it exists")


def _create(args: argparse.Namespace) -> int:
    from tunesmith.label.create import create_queue
    from tunesmith.review.endpoint import ChatEndpoint, chat_completions_url

    if (args.teacher is None) != (args.teacher_model is None):
        raise ConfigError("--teacher", "--teacher URL and --teacher-model NAME go together",
                          "give both, or neither for a queue without suggestions")
    if args.teacher_timeout <= 0:
        raise ConfigError("--teacher-timeout", f"must be a positive number of seconds, got {args.teacher_timeout:g}")
    if args.out is not None:  # a queue may replace a queue (with --overwrite), never another record
        check_out_target(args.out, own=("labeling/queue.db",), writes_database=True)
    teacher = None
    if args.teacher is not None:
        teacher = ChatEndpoint(chat_completions_url(args.teacher), args.teacher_model,
                               os.environ.get(args.teacher_key_env) or None, args.teacher_timeout)
    made = create_queue(args.log_dir, args.run, args.strategy, args.budget, args.out, args.overwrite, teacher)
    print(made.render())
    return 0


def _stats(args: argparse.Namespace) -> int:
    from tunesmith.label.stats import label_stats, render_stats
    from tunesmith.label.store import LabelQueue

    with LabelQueue.open(args.queue) as queue:
        stats = label_stats(queue)
    print(json.dumps(stats, indent=2, ensure_ascii=False) if args.json else render_stats(stats))
    return 0


def _export(args: argparse.Namespace) -> int:
    from tunesmith.label.export import export_labels

    result = export_labels(args.queue, check_out_target(args.output_path, "OUT"), args.overwrite)
    print(result.render("item"))
    return result.exit_code


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "label create": _create,
    "label stats": _stats,
    "label export": _export,
}
