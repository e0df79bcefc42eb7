"""Commands of retrieval-augmented generation: `rag index`, `rag query`, `compare-rag`."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import get_args

from tunesmith.cli.arguments import add_set
from tunesmith.config import load_config
from tunesmith.config.rag_section import Retriever
from tunesmith.errors import ConfigError


def add_commands(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("rag", help="retrieval over rag.documents: build the index, try a query")
    rag_commands = p.add_subparsers(dest="rag_command", required=True, metavar="SUBCOMMAND")
    q = rag_commands.add_parser("index", help="chunk rag.documents and build the BM25 (and FAISS) index into the "
                                "cache; reused until a document or setting changes")
    q.add_argument("config")
    add_set(q, example="rag.chunk_tokens=128")
    q = rag_commands.add_parser("query", help="print the passages retrieved for a question, with scores")
    q.add_argument("config")
    q.add_argument("question")
    q.add_argument("--top-k", type=int, metavar="K", help="passages to print (default: rag.top_k)")
    q.add_argument("--retriever", choices=get_args(Retriever), help="default: rag.retriever")
    add_set(q, example="rag.retriever=hybrid")

    p = commands.add_parser("compare-rag", help="SFT, RAG, or both: train the fine-tunes and score base, base+RAG, "
                            "SFT and SFT+RAG on the same test questions")
    p.add_argument("config", help="a run config with a rag: section (documents, gold_column)")
    p.add_argument("--out", metavar="DIR", help="comparison folder (default: <output.dir>/<config stem>-compare-rag)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing comparison (and retrain arms whose settings changed)")
    add_set(p)


def _rag_config(args: argparse.Namespace):
    config = load_config(args.config, args.overrides)
    if not config.rag.enabled:
        raise ConfigError("rag.documents", "is not set", "add a rag: section naming the documents to retrieve from")
    return config


def _rag_index(args: argparse.Namespace) -> int:
    from tunesmith.models import load_tokenizer
    from tunesmith.retrieval import load_index

    config = _rag_config(args)
    index, cached = load_index(config.rag, load_tokenizer(config.model))
    documents = len({passage.document_id for passage in index.passages})
    state = "already in the cache" if cached else "built"
    print(f"index {index.key}: {documents} documents, {len(index.passages)} passages ({state})")
    return 0


def _rag_query(args: argparse.Namespace) -> int:
    from tunesmith.models import load_tokenizer
    from tunesmith.retrieval import load_index
    from tunesmith.text import shorten

    config = _rag_config(args)
    if args.retriever:
        config.rag.retriever = args.retriever
    if args.top_k is not None and args.top_k < 1:
        raise ConfigError("--top-k", f"{args.top_k} is not a positive number of passages")
    index, _ = load_index(config.rag, load_tokenizer(config.model))
    for hit in index.search([args.question], config.rag.retriever, args.top_k or config.rag.top_k)[0]:
        passage = hit.passage
        print(f"{hit.rank}. {hit.score:.4f}  {passage.document_id} #{passage.chunk}  {passage.title}")
        print(f"   {shorten(passage.text, 300)}")
    return 0


def _compare_rag(args: argparse.Namespace) -> int:
    from tunesmith.rag import compare_rag, comparison_folder

    config = load_config(args.config, args.overrides)
    result = compare_rag(config, args.config, args.out, args.overwrite)
    folder = comparison_folder(config, args.config, args.out)
    for arm, entry in result["arms"].items():
        scores = ", ".join(f"{name} {value:.4f}" for name, value in entry["metrics"].items()
                           if name in ("squad_em", "squad_f1", "accuracy", "f1", "mae", "pearson")
                           and isinstance(value, float))
        print(f"{arm:9} {scores}; {entry['seconds_per_question']:.3f} s and "
              f"{entry['prompt_tokens_per_question']:.0f} prompt tokens per question")
    print(f"report: {folder / 'report.html'}")
    return 0


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "rag index": _rag_index,
    "rag query": _rag_query,
    "compare-rag": _compare_rag,
}
