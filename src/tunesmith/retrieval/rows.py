"""Rows with retrieved context, and how a run trains and evaluates on them.

- `rag_splits`: a run's splits with passages put into the prompts `rag` asks for: training (and validation) rows
  for `train_with_context`, built the RAFT way (Zhang et al., 2024: the retrieved passages, and when retrieval
  missed the gold passage it replaces the last distractor with probability `gold_mix`, at a seeded position);
  test rows for `answer_with_context`; and every document as a plain-text training row for `sft_on_documents`.
- `rag_run_config`: the seam into `tunesmith run`. Those splits are written into the run folder (`rag/*.jsonl`,
  messages rows, with `rag/summary.json`) and the run's data settings point at them, so the ordinary data stage
  checks and tokenizes them (truncation counted), training learns them and evaluation answers the test rows with
  their passages: no stage has a second code path for retrieval.
"""

from __future__ import annotations

import logging
import random
from dataclasses import asdict, dataclass, field, replace

from tunesmith import distributed
from tunesmith.config.schema import RunConfig
from tunesmith.data.example import Example, Splits, location_order
from tunesmith.data.readers import read_rows
from tunesmith.data.splits import SPLITS, load_run_splits
from tunesmith.data.task import Task
from tunesmith.errors import DataError
from tunesmith.json_files import write_json, write_jsonl
from tunesmith.models import load_tokenizer
from tunesmith.retrieval.chunking import Passage
from tunesmith.retrieval.documents import read_documents
from tunesmith.retrieval.index import RetrievalIndex, load_index
from tunesmith.retrieval.metrics import recall_depths, retrieval_metrics
from tunesmith.retrieval.prompts import PromptFit, answer_token_count, with_passages
from tunesmith.run_dir import RunDir

log = logging.getLogger("tunesmith")

RETRIEVAL_DEPTH = 100
"""Ranks searched for MRR (a gold passage below it counts 0)."""


@dataclass
class RaftCounts:
    """How the training rows' passages came about."""

    gold_retrieved: int = 0
    gold_mixed_in: int = 0
    distractors_only: int = 0
    no_gold_known: int = 0


@dataclass
class RagSplits:
    splits: Splits
    summary: dict = field(default_factory=dict)


def uses_rows(config: RunConfig) -> bool:
    """Whether `rag` changes a run's rows (else a run is the ordinary one)."""
    rag = config.rag
    return rag.enabled and (rag.train_with_context or rag.answer_with_context or rag.sft_on_documents)


def question_of(example: Example) -> str:
    return next(message["content"] for message in reversed(example.messages) if message["role"] == "user")


def gold_ids(examples: list[Example], column: str) -> dict[str, str]:
    """Location → the row's `rag.gold_column` value, read from the rows' own files (an `Example` keeps only the
    conversation). Rows without the key are left out."""
    files = sorted({location_order(example.location)[0] for example in examples})
    found = {}
    for file in files:
        for row in read_rows(file):
            if row.data.get(column) is not None:
                found[row.location] = str(row.data[column])
    return found


def gold_passage(passages: list[Passage], answer: str) -> Passage:
    """The gold document's passage to show: the first that contains the answer, else its first."""
    return next((passage for passage in passages if answer and answer in passage.text), passages[0])


def raft_passages(hits: list[Passage], gold: Passage | None, gold_mix: float, rng: random.Random,
                  counts: RaftCounts) -> list[Passage]:
    """The passages of one training row (see the module docstring); ``counts`` records which case it was."""
    if gold is None:
        counts.no_gold_known += 1
        return hits
    if any(hit.document_id == gold.document_id for hit in hits):
        counts.gold_retrieved += 1
        return hits
    if rng.random() >= gold_mix:
        counts.distractors_only += 1
        return hits
    counts.gold_mixed_in += 1
    kept = hits[:-1] if hits else []
    kept.insert(rng.randrange(len(kept) + 1), gold)  # anywhere: the model must not learn "the answer is last"
    return kept


def context_examples(examples: list[Example], index: RetrievalIndex, config: RunConfig, tokenizer,
                     answer_tokens: int | None, golds: dict[str, str] | None = None,
                     seed: int | None = None) -> tuple[list[Example], PromptFit, RaftCounts]:
    """``examples`` with the passages retrieved for their questions. ``answer_tokens`` is the room kept for the
    answer (None: each row's own reference, for training rows). With ``golds`` (location → gold document id) and
    ``seed``, the gold passage is mixed in the RAFT way."""
    rag = config.rag
    hits = index.search([question_of(example) for example in examples], rag.retriever, rag.top_k)
    by_document: dict[str, list[Passage]] = {}
    for passage in index.passages:
        by_document.setdefault(passage.document_id, []).append(passage)
    rng = random.Random(f"tunesmith-raft:{seed}")
    fit, counts, result = PromptFit(), RaftCounts(), []
    for example, row_hits in zip(examples, hits):
        passages = [hit.passage for hit in row_hits]
        if golds is not None:
            gold_id = golds.get(example.location)
            if gold_id is not None and gold_id not in by_document:
                raise DataError(example.location, None, f"{rag.gold_column} {gold_id!r} names no document of "
                                f"{rag.documents}", "check rag.gold_column and rag.columns.id")
            gold = gold_passage(by_document[gold_id], example.reference) if gold_id is not None else None
            passages = raft_passages(passages, gold, rag.gold_mix, rng, counts)
        reserve = answer_token_count(example, tokenizer) if answer_tokens is None else answer_tokens
        rebuilt, row_fit = with_passages(example, passages, rag.prompt, tokenizer, config.data.max_length, reserve)
        result.append(rebuilt)
        fit.add(row_fit)
    return result, fit, counts


def document_examples(config: RunConfig) -> list[Example]:
    """Every document as a plain-text row (an empty user turn, the text learned whole), as the `text` format
    makes them."""
    return [Example(messages=({"role": "user", "content": ""}, {"role": "assistant", "content": document.text}),
                    location=document.location) for document in read_documents(config.rag)]


def measure_retrievers(config: RunConfig, index: RetrievalIndex, questions: list[Example],
                       retrievers: list[str]) -> dict:
    """recall@k (`recall_depths`) and MRR of each of ``retrievers`` over the ``questions`` whose row names a gold
    document (`rag.gold_column`); empty when none does. MRR counts ranks down to `RETRIEVAL_DEPTH`."""
    golds = gold_ids(questions, config.rag.gold_column)
    known = [example for example in questions if example.location in golds]
    if not known:
        return {}
    return {retriever: retrieval_metrics(index.search([question_of(example) for example in known], retriever,
                                                      RETRIEVAL_DEPTH),
                                         [golds[example.location] for example in known],
                                         recall_depths(config.rag.top_k))
            for retriever in retrievers}


def rag_splits(config: RunConfig, splits: Splits, tokenizer, index: RetrievalIndex) -> RagSplits:
    """``splits`` with the rows `rag` asks for (see the module docstring), and a summary of what was done."""
    rag = config.rag
    summary: dict = {"retriever": rag.retriever, "top_k": rag.top_k, "index_key": index.key,
                     "passages": len(index.passages)}
    train, validation, test = list(splits.train), list(splits.validation), list(splits.test)
    if rag.train_with_context:
        golds = gold_ids(train + validation, rag.gold_column)
        train, fit, counts = context_examples(train, index, config, tokenizer, None, golds, config.train.seed)
        validation, val_fit, _ = context_examples(validation, index, config, tokenizer, None)
        summary.update(train_prompts=asdict(fit), raft=asdict(counts), validation_prompts=asdict(val_fit))
        log.info("training rows with context: %s; RAFT: %s", fit.describe(), asdict(counts))
    if rag.gold_column is not None:
        summary["test_retrieval"] = measure_retrievers(config, index, test, [rag.retriever])
    if rag.answer_with_context:
        test, fit, _ = context_examples(test, index, config, tokenizer, config.evaluate.max_new_tokens)
        summary["test_prompts"] = asdict(fit)
        log.info("test rows with context: %s", fit.describe())
    if rag.sft_on_documents:
        documents = document_examples(config)
        train += documents
        summary["documents_added"] = len(documents)
    return RagSplits(replace(splits, train=train, validation=validation, test=test), summary)


# ---- the seam into `tunesmith run` -------------------------------------------------------------------------------


def rag_run_config(config: RunConfig, run: RunDir, splits: Splits | None = None) -> RunConfig:
    """The config a run trains and evaluates with: ``config`` itself when `rag` changes no rows, else one whose
    data settings read the rows `rag_splits` wrote into the run folder (rank 0 writes them the first time, the
    others wait). The task and labels of the original data are kept (`evaluate.task`, `data.label_names`), as
    messages rows do not say them; a split without rows (no validation, say) stays without rows. ``splits`` are
    ``config``'s own splits when the caller holds them already (they are read otherwise)."""
    if not uses_rows(config):
        return config
    folder = run.rag
    splits = splits if splits is not None else load_run_splits(config.data)
    # Written once per run (summary.json last): a resumed run, and commands on a finished one, read the same rows.
    if distributed.is_main() and not (folder / "summary.json").is_file():
        tokenizer = load_tokenizer(config.model)
        index, _ = load_index(config.rag, tokenizer)
        built = rag_splits(config, splits, tokenizer, index)
        folder.mkdir(exist_ok=True)
        for name in SPLITS:
            examples = getattr(built.splits, name)
            if examples:
                write_jsonl(folder / f"{name}.jsonl", [_row(example) for example in examples])
        write_json(folder / "summary.json", built.summary)
    distributed.barrier()
    task = Task.resolve(config, splits)
    files = {name: str(folder / f"{name}.jsonl") if getattr(splits, name) else None for name in SPLITS}
    # A held-out split without rows stays empty: no file, and a fraction of 0 so nothing is carved from train.
    split = config.data.split.model_copy(update={name: 0.0 for name in ("validation", "test") if not files[name]})
    data = config.data.model_copy(update={
        **files, "split": split, "path": None, "sources": None, "format": "messages", "columns": {},
        "system_prompt": None, "instruction": None, "max_train_rows": None, "max_eval_rows": None,
        "streaming": False, "label_names": task.labels,
    })
    evaluate = config.evaluate.model_copy(update={"task": task.name})
    return config.model_copy(update={"data": data, "evaluate": evaluate})


def _row(example: Example) -> dict:
    """A messages row that keeps where the row came from (``source``: its FILE:LINE in the user's data)."""
    return {"messages": [dict(message) for message in example.messages], "source": example.location}
