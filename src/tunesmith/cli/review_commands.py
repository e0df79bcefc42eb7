"""Blind A/B review of a run's answers: `review create`, `review export`, `review stats`, `review judge`."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable

from tunesmith.cli.arguments import add_set


def add_commands(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("review", help="blind A/B review of the tuned model's answers by people and a judge model")
    review_commands = p.add_subparsers(dest="review_command", required=True, metavar="SUBCOMMAND")

    q = review_commands.add_parser(
        "create", help="sample test prompts with both models' answers and give each reviewer a blind queue")
    q.add_argument("run_dir")
    q.add_argument("--against", action="append", metavar="base|RUN",
                   help="the model to compare with: `base` (the run's base model) or another run folder; repeat for "
                        "more than two models (default: base)")
    q.add_argument("--items", type=int, help="test prompts to sample (default: review.items)")
    q.add_argument("--reviewers", help="comma-separated reviewer names (default: review.reviewers)")
    q.add_argument("--overlap", type=float, help="items every reviewer judges: a count, or a share below 1 "
                                                 "(default: review.overlap)")
    q.add_argument("--seed", type=int, help="seed of the sample, the queues and the sides (default: review.seed)")
    q.add_argument("--overwrite", action="store_true", help="replace an existing review and its judgments")
    add_set(q, "a review: setting for this review", "review.show_reference=true")

    q = review_commands.add_parser("export", help="write every judgment, models un-blinded, as CSV or JSON Lines; "
                                                  "or, with --pairs, preference pairs to train on")
    q.add_argument("run_dir")
    q.add_argument("--format", choices=["csv", "jsonl"], help="csv or jsonl (required without --pairs)")
    q.add_argument("--pairs", action="store_true",
                   help="write prompt/chosen/rejected rows: the preferred answer chosen, the other rejected (ties and "
                        "both-bad left out, counted); JSON Lines, default <run>/review_pairs.jsonl")
    q.add_argument("--out", help="file to write (default: <run>/review_judgments.<format>)")
    q.add_argument("--overwrite", action="store_true", help="replace the file if it exists")

    q = review_commands.add_parser(
        "stats", help="win/tie/loss with intervals and a sign test, rubric means, agreement, Bradley-Terry")
    q.add_argument("run_dir")
    q.add_argument("--json", action="store_true", help="print the statistics as one JSON object")

    q = review_commands.add_parser(
        "judge", help="have a model served by an OpenAI-compatible endpoint judge every pair, in both orders; or, "
                      "with --verdict-by reference, prefer the answer closer to the reference answer")
    q.add_argument("run_dir")
    q.add_argument("--endpoint", metavar="URL",
                   help="the server (e.g. http://127.0.0.1:8000) or its /v1/chat/completions URL (required with "
                        "--verdict-by reply or logprobs)")
    q.add_argument("--model", help="the model name the endpoint serves (required with --verdict-by reply or logprobs)")
    q.add_argument("--api-key", help="sent as `Authorization: Bearer KEY` (default: $OPENAI_API_KEY)")
    q.add_argument("--reviewer", help="name its verdicts are stored under (default: judge:<model>, or "
                                      "judge:reference-<metric> with --verdict-by reference)")
    q.add_argument("--timeout", type=float, help="seconds to wait for each answer (default: 120)")
    q.add_argument("--verdict-by", choices=["reply", "logprobs", "reference"], default="reply",
                   help="reply: the judge explains and ends with a VERDICT line; logprobs: the judge answers one "
                        "letter and its verdict is read from its first token's probabilities (for small judges; "
                        "the endpoint must return logprobs); reference: no model, the answer scoring higher against "
                        "the item's reference answer wins (default: reply)")
    q.add_argument("--tie-odds", type=float, metavar="R",
                   help="with --verdict-by logprobs, a verdict needs odds of at least R:1 for one answer, averaged "
                        "over both orders; below, a tie (default: 1.2)")
    q.add_argument("--metric", choices=["rouge_l", "bleu"],
                   help="with --verdict-by reference, the score against the reference, as evaluation computes it "
                        "(default: rouge_l)")
    q.add_argument("--tie-margin", type=float, metavar="M",
                   help="with --verdict-by reference, scores closer than M on the metric's 0-1 scale are a tie "
                        "(for bleu, M x 100 BLEU points) (default: 0.01)")


def _create(args: argparse.Namespace) -> int:
    from tunesmith.config import override_section
    from tunesmith.config.vocabulary import BASE_MODEL
    from tunesmith.review.create import create_review
    from tunesmith.run_dir import RunDir

    run = RunDir(args.run_dir)
    flags = {"items": args.items, "overlap": args.overlap, "seed": args.seed,
             "reviewers": [name.strip() for name in args.reviewers.split(",")] if args.reviewers else None}
    overrides = [*args.overrides, *(f"review.{key}={json.dumps(value)}" for key, value in flags.items()
                                    if value is not None)]
    settings = override_section("review", run.config().review, overrides)
    made = create_review(run, against=args.against or [BASE_MODEL], settings=settings, overwrite=args.overwrite)
    print(f"review: {made['path']}")
    print(f"models: {', '.join(made['models'])} ({made['prompts']} prompts, {made['items']} items; answers generated: "
          + ", ".join(f"{name} {count}" for name, count in made["generated"].items()) + ")")
    if made["sampling"]:  # classification: drawn where the models' labels differ
        print(f"sample: {made['sampling']}")
    print("queues: " + ", ".join(f"{name} {count}" for name, count in made["queues"].items())
          + f" (items everyone judges: {made['overlap']})")
    return 0


def _export(args: argparse.Namespace) -> int:
    from tunesmith.errors import ConfigError
    from tunesmith.review.export import export_judgments, export_pairs

    if args.pairs:
        if args.format == "csv":
            raise ConfigError("--format", "pairs are written as JSON Lines", "leave out --format csv")
        result = export_pairs(args.run_dir, args.out, args.overwrite)
        print(result.render("judgment"))
        return result.exit_code
    if args.format is None:
        raise ConfigError("--format", "review export needs --format csv or jsonl (or --pairs)")
    path, count = export_judgments(args.run_dir, args.format, args.out, args.overwrite)
    print(f"{count} judgments: {path}")
    return 0


def _stats(args: argparse.Namespace) -> int:
    from tunesmith.document import Document, Section, render_text
    from tunesmith.review.stats import review_stats
    from tunesmith.review.store import ReviewStore
    from tunesmith.review.summary import stats_blocks

    with ReviewStore.open(args.run_dir) as store:
        stats = review_stats(store)
    if args.json:
        print(json.dumps(stats, indent=2, ensure_ascii=False))
    else:
        print(render_text(Document(f"Human review of {args.run_dir}", sections=[Section("", stats_blocks(stats))])))
    return 0


_MODEL_JUDGE_OPTIONS = ("endpoint", "model", "api_key", "timeout")
_REFERENCE_JUDGE_OPTIONS = ("metric", "tie_margin")


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _judge(args: argparse.Namespace) -> int:
    from tunesmith.errors import ConfigError

    if args.tie_odds is not None and args.verdict_by != "logprobs":
        raise ConfigError("--tie-odds", "applies to --verdict-by logprobs only", "add --verdict-by logprobs")
    if args.verdict_by == "reference":
        for name in _MODEL_JUDGE_OPTIONS:
            if getattr(args, name) is not None:
                raise ConfigError(_option(name), "applies to a judge model (--verdict-by reply or logprobs) only; "
                                                 "--verdict-by reference asks no model", f"leave out {_option(name)}")
        return _judge_by_reference(args)
    for name in _REFERENCE_JUDGE_OPTIONS:
        if getattr(args, name) is not None:
            raise ConfigError(_option(name), "applies to --verdict-by reference only", "add --verdict-by reference")
    for name in ("endpoint", "model"):
        if getattr(args, name) is None:
            raise ConfigError(_option(name), f"review judge --verdict-by {args.verdict_by} needs the judge model's "
                                             f"{_option(name)}", "or use --verdict-by reference, which needs no model")
    return _judge_by_model(args)


def _judge_by_model(args: argparse.Namespace) -> int:
    from tunesmith.review.judge import TIE_ODDS, JudgeEndpoint, chat_completions_url, judge_review

    api_key = os.environ.get("OPENAI_API_KEY") if args.api_key is None else args.api_key
    endpoint = JudgeEndpoint(chat_completions_url(args.endpoint), args.model, api_key,
                             120.0 if args.timeout is None else args.timeout)
    made = judge_review(args.run_dir, endpoint, reviewer=args.reviewer, verdict_by=args.verdict_by,
                        tie_odds=TIE_ODDS if args.tie_odds is None else args.tie_odds)
    if args.verdict_by == "reply":
        print(f"{made['reviewer']}: judged {made['judged']} items ({made['consistent']} the same in both orders, "
              f"{made['inconsistent']} order-dependent, stored as ties); {made['unreadable']} replies without a "
              f"verdict; {made['remaining']} items left")
    else:
        print(f"{made['reviewer']}: judged {made['judged']} items by its letter probabilities ({made['consistent']} "
              f"preferring the same answer in both orders, {made['inconsistent']} order-dependent, decided by both "
              f"orders' mean log-odds); {made['unreadable']} items with neither letter among its top tokens; "
              f"{made['remaining']} items left")
    return 0


def _judge_by_reference(args: argparse.Namespace) -> int:
    from tunesmith.review.judge_reference import TIE_MARGIN, judge_by_reference

    made = judge_by_reference(args.run_dir, metric=args.metric or "rouge_l",
                              tie_margin=TIE_MARGIN if args.tie_margin is None else args.tie_margin,
                              reviewer=args.reviewer)
    print(f"{made['reviewer']}: judged {made['judged']} items by {made['metric']} against the reference answer "
          f"(order-free: each answer is scored on its own, so no position bias; {made['ties']} within the tie margin "
          f"{made['tie_margin']:g}, stored as ties); {made['no_reference']} items without a reference left "
          f"unjudged; {made['remaining']} items left")
    return 0


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "review create": _create,
    "review export": _export,
    "review stats": _stats,
    "review judge": _judge,
}
