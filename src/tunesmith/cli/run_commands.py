"""Commands on a finished (or training) run folder: `eval`, `compare`, `export`, `report`, `chat`, `generate`."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import get_args

from tunesmith import distributed
from tunesmith.cli.arguments import add_processes, add_set, existing_run
from tunesmith.config.vocabulary import DEFAULT_GGUF_QUANT, EXPORT_FORMATS, ExportFormat, GgufQuant
from tunesmith.errors import TunesmithError
from tunesmith.run_dir import RunDir


def add_commands(commands: argparse._SubParsersAction) -> None:
    for name, text in [("eval", "evaluate the tuned model (and the base) on the test split"),
                       ("compare", "base vs tuned metrics side by side (or --against a previous run)"),
                       ("export", "write the PEFT adapter and the merged safetensors model, or a GGUF for "
                                  "llama.cpp and Ollama"),
                       ("report", "(re)build report.md and report.html")]:
        p = commands.add_parser(name, help=text)
        p.add_argument("run_dir")
        add_set(p)
        if name == "eval":
            p.add_argument("--no-base", action="store_true",
                           help="skip the base model (eval.json keeps the previous base results when they were "
                                "computed on the same test rows with the same base model)")
            add_processes(p)
        if name == "compare":
            p.add_argument("--against", metavar="PREVIOUS_RUN",
                           help="compare with a previous run's model instead of the base, on this run's test split")
        if name == "export":
            p.add_argument("--format", choices=get_args(ExportFormat), default="hf",
                           help="; ".join(f"{key}: {text}" for key, text in EXPORT_FORMATS.items()).replace("`", "")
                           + " (default: hf)")
            p.add_argument("--quant", choices=get_args(GgufQuant),
                           help=f"tensor type of the GGUF (default: {DEFAULT_GGUF_QUANT}); --format gguf only")
            p.add_argument("--force", action="store_true", help="export even when the run failed its release gate")

    p = commands.add_parser("chat", help="interactive chat with the tuned model (streams tokens)")
    p.add_argument("run_dir")
    p.add_argument("--system", help="system prompt (default: the run's data.system_prompt)")
    p.add_argument("--max-new-tokens", type=int, default=256)
    add_set(p)

    p = commands.add_parser("generate", help="answer one prompt with the tuned model")
    p.add_argument("run_dir")
    p.add_argument("--prompt", required=True)
    p.add_argument("--system", help="system prompt (default: the run's data.system_prompt)")
    p.add_argument("--max-new-tokens", type=int, default=128)
    add_set(p)


def _eval(args: argparse.Namespace) -> int:
    from tunesmith.data import RunInputs
    from tunesmith.evaluate import evaluate_run
    from tunesmith.results import format_comparison

    config, run = existing_run(args)
    result = evaluate_run(config, run, RunInputs(config), include_base=False if args.no_base else None)
    if distributed.is_main():
        print(format_comparison(result))
    return 0


def _compare(args: argparse.Namespace) -> int:
    from tunesmith.evaluate import compare_run

    against = RunDir(args.against) if args.against else None
    if against is not None:
        against.config()  # fails clearly when it is not a run folder
    print(compare_run(*existing_run(args), against=against))
    return 0


def _export(args: argparse.Namespace) -> int:
    from tunesmith.export import export_gguf, export_run
    from tunesmith.export.gguf import MODELFILE
    from tunesmith.results.gate import require_gate

    require_gate(args.run_dir, "export", args.force)
    if args.format == "hf":
        if args.quant is not None:
            raise TunesmithError("--quant applies to --format gguf only", "drop --quant, or add --format gguf")
        for name, path in export_run(*existing_run(args)).items():
            print(f"{name}: {path}")
        return 0
    path = export_gguf(*existing_run(args), quant=args.quant or DEFAULT_GGUF_QUANT)
    print(f"gguf: {path}")
    print(f"modelfile: {path.parent / MODELFILE}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from tunesmith.report import build_report

    for path in build_report(*existing_run(args)).values():
        print(path)
    return 0


def _chat(args: argparse.Namespace) -> int:
    from tunesmith.predict import chat_loop

    existing_run(args)
    chat_loop(args.run_dir, max_new_tokens=args.max_new_tokens, system=args.system)
    return 0


def _generate(args: argparse.Namespace) -> int:
    from tunesmith.predict import generate_text

    existing_run(args)
    print(generate_text(args.run_dir, args.prompt, max_new_tokens=args.max_new_tokens, system=args.system))
    return 0


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "eval": _eval,
    "compare": _compare,
    "export": _export,
    "report": _report,
    "chat": _chat,
    "generate": _generate,
}
