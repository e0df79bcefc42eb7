"""Commands of retrieval over `rag.documents`: `rag index`, `rag query`."""

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


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "rag index": _rag_index,
    "rag query": _rag_query,
}
