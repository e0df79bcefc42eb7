"""`tunesmith compare-rag`: SFT, RAG, or both, measured on the same test questions.

Four arms: the base model on the plain questions (base), on the questions with retrieved passages (base+RAG), the
fine-tuned model on the plain questions (SFT), and the model fine-tuned on questions with passages (RAFT rows,
`rag.train_with_context`) answering with passages (SFT+RAG). Both fine-tunes are ordinary runs of the pipeline
(`rag.sft_on_documents` applies to both), trained once into the comparison folder and reused afterwards when
their settings are unchanged. Every arm answers through `tunesmith.predict.answers` with the run's evaluation
settings; the scores are the task's metrics, and for generation SQuAD exact match and token F1.
"""

from __future__ import annotations

import gc
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console

from tunesmith.config.changes import fingerprint
from tunesmith.config.schema import RunConfig
from tunesmith.data.example import Example, Splits
from tunesmith.data.run_inputs import RunInputs
from tunesmith.data.task import Task
from tunesmith.data.tokenize import prompt_token_ids
from tunesmith.errors import ConfigError, DataError, ModelError, RunError
from tunesmith.experiments.rag_report import write_report
from tunesmith.json_files import read_json, write_json, write_jsonl
from tunesmith.models import load_base_model, load_tokenizer, load_tuned_model
from tunesmith.pipeline import create_run, run_pipeline
from tunesmith.predict.answers import answer, correct_of, references_of, task_metrics
from tunesmith.predict.metrics import qa_metrics
from tunesmith.retrieval.index import RetrievalIndex, load_index, uses_dense
from tunesmith.retrieval.rows import context_examples, measure_retrievers, question_of
from tunesmith.run_dir import RunDir, claim_folder

_console = Console(stderr=True)

ARMS = ("base", "base+RAG", "SFT", "SFT+RAG")


@dataclass(frozen=True)
class TrainedArm:
    run: RunDir
    train_seconds: float | None
    reused: bool


def comparison_folder(config: RunConfig, config_path: str | Path, out: str | Path | None) -> Path:
    return Path(out) if out else Path(config.output.dir) / f"{Path(config_path).stem}-compare-rag"


def arm_config(config: RunConfig, folder: Path, name: str, with_context: bool) -> RunConfig:
    """The run config of one fine-tuned arm: the user's, trained with or without passages in its prompts."""
    rag = config.rag.model_copy(update={"train_with_context": with_context, "answer_with_context": False})
    output = config.output.model_copy(update={"dir": str(folder), "name": name})
    return config.model_copy(update={"rag": rag, "output": output})


def compare_rag(config: RunConfig, config_path: str | Path, out: str | Path | None = None,
                overwrite: bool = False) -> dict:
    """Train (or reuse) both fine-tunes, answer the test questions in all four arms, and write the comparison
    (``comparison.json``, ``report.md`` with its chart, ``report.html``, ``predictions/<arm>.jsonl``) into the
    comparison folder. Returns comparison.json's content."""
    _require_rag(config)
    folder = comparison_folder(config, config_path, out)
    if (folder / "comparison.json").exists() and not overwrite:
        raise RunError(f"{folder} already holds a comparison", "pass --overwrite to replace it (the trained arms are "
                       "reused while their settings are unchanged), or --out another folder")
    claim_folder(folder, "comparison")  # marked: a rerun after an interruption finds it tunesmith's
    started = time.perf_counter()
    tokenizer = load_tokenizer(config.model)
    index, index_seconds, index_cached = _timed_index(config, tokenizer)
    inputs = RunInputs(config)
    splits, task = inputs.splits, inputs.task
    plain = splits.test
    if not plain:
        raise DataError(splits.files.get("test", "data"), None, "the test split has no rows",
                        "give data.test or set data.split.test above 0")
    with_context, test_fit, _ = context_examples(plain, index, config, tokenizer, config.evaluate.max_new_tokens)
    retrieval = _retrieval_table(config, index, plain)

    trained = {name: _trained_arm(arm_config(config, folder, name, context), overwrite, splits)
               for name, context in (("sft", False), ("sft_rag", True))}
    arms: dict[str, dict] = {}
    predictions: dict[str, list[str]] = {}
    base, _ = load_base_model(config.model)
    for arm, examples in (("base", plain), ("base+RAG", with_context)):
        arms[arm], predictions[arm] = _answer_arm(arm, base, tokenizer, examples, task, config)
    del base
    for arm, name, examples in (("SFT", "sft", plain), ("SFT+RAG", "sft_rag", with_context)):
        model, tuned_tokenizer = load_tuned_model(trained[name].run.root, merge=True)
        arms[arm], predictions[arm] = _answer_arm(arm, model, tuned_tokenizer, examples, task, config)
        arms[arm]["train_seconds"] = trained[name].train_seconds
        arms[arm]["run"] = str(trained[name].run.root)
        del model
        gc.collect()

    (folder / "predictions").mkdir(exist_ok=True)
    for arm in ARMS:
        examples = with_context if arm.endswith("+RAG") else plain
        write_jsonl(folder / "predictions" / f"{_slug(arm)}.jsonl", _records(task, examples, predictions[arm]))
    result = {
        "task": task.name, "num_questions": len(plain), "retriever": config.rag.retriever, "top_k": config.rag.top_k,
        "arms": arms, "retrieval": retrieval, "test_prompts": asdict(test_fit),
        "index": {"key": index.key, "passages": len(index.passages), "seconds": index_seconds,
                  "from_cache": index_cached},
        "reused_runs": [name for name, arm in trained.items() if arm.reused],
        "examples": _examples(plain, predictions, config.evaluate.num_examples),
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_json(folder / "comparison.json", result)
    write_report(folder, result, config)
    return result


def _require_rag(config: RunConfig) -> None:
    if not config.rag.enabled:
        raise ConfigError("rag.documents", "compare-rag needs the documents to retrieve from",
                          "add a rag: section with documents (and gold_column for RAFT training)")
    if config.rag.gold_column is None:
        raise ConfigError("rag.gold_column", "compare-rag trains the SFT+RAG arm on RAFT rows, which need the gold "
                          "document of each training question", "name the row key, e.g. context_id")


def _timed_index(config: RunConfig, tokenizer) -> tuple[RetrievalIndex, float, bool]:
    """The index with dense search when the embedding model is there (every retriever is then measured); without
    it, and with `rag.retriever: bm25`, BM25 alone, said so."""
    started = time.perf_counter()
    try:
        index, cached = load_index(config.rag, tokenizer, dense=True)
    except ModelError as error:
        if uses_dense(config.rag.retriever):
            raise
        _console.print(f"dense and hybrid retrieval are not measured: {error}")
        index, cached = load_index(config.rag, tokenizer, dense=False)
    seconds = round(time.perf_counter() - started, 1)
    _console.print(f"retrieval index: {len(index.passages)} passages ({'cached' if cached else 'built'}, {seconds}s)")
    return index, seconds, cached


def _retrieval_table(config: RunConfig, index: RetrievalIndex, questions: list[Example]) -> dict:
    """recall@k and MRR of each retriever the index holds, over the test questions with a gold document."""
    retrievers = ["bm25", "dense", "hybrid"] if index.faiss_index is not None else ["bm25"]
    return measure_retrievers(config, index, questions, retrievers)


def _trained_arm(config: RunConfig, overwrite: bool, splits: Splits) -> TrainedArm:
    run = RunDir(Path(config.output.dir) / config.output.name)
    if run.best.is_dir():
        origin = read_json(run.origin) or {}
        if origin.get("fingerprint") == fingerprint(config):
            _console.print(f"reusing the trained arm {run.root}")
            return TrainedArm(run, (read_json(run.timings) or {}).get("train"), reused=True)
        if not overwrite:
            raise RunError(f"{run.root} was trained with other settings",
                           "pass --overwrite to train it again, or --out another folder")
    if run.root.exists():
        shutil.rmtree(run.root)
    _console.print(f"training {run.root.name} ({'with' if config.rag.train_with_context else 'without'} passages)")
    run = create_run(config)
    run_pipeline(config, run, until="train", splits=splits)  # the arms' data settings are the comparison's
    return TrainedArm(run, (read_json(run.timings) or {}).get("train"), reused=False)


def _answer_arm(arm: str, model, tokenizer, examples: list[Example], task: Task,
                config: RunConfig) -> tuple[dict, list[str]]:
    _console.print(f"answering {len(examples)} questions: {arm}")
    started = time.perf_counter()
    predictions = answer(model, tokenizer, examples, task, config.evaluate).predictions
    seconds = time.perf_counter() - started
    metrics = dict(task_metrics(task, examples, predictions))
    if task.name == "generation":
        metrics.update(qa_metrics([references_of(example) for example in examples], predictions))
    prompt_tokens = [len(prompt_token_ids(tokenizer, example.prompt_messages)) for example in examples]
    return {
        "metrics": metrics, "answer_seconds": round(seconds, 2),
        "seconds_per_question": seconds / len(examples),
        "prompt_tokens_per_question": sum(prompt_tokens) / len(prompt_tokens),
    }, predictions


def _records(task: Task, examples: list[Example], predictions: list[str]) -> list[dict]:
    return [{"location": example.location, "prompt": question_of(example), "reference": example.reference,
             "references": references_of(example), "prediction": prediction,
             "correct": correct_of(task, example, prediction)}
            for example, prediction in zip(examples, predictions)]


def _examples(questions: list[Example], predictions: dict[str, list[str]], count: int) -> list[dict]:
    """The first ``count`` questions with every arm's answer."""
    return [{"question": question_of(example), "reference": example.reference,
             **{arm: predictions[arm][index] for arm in ARMS}}
            for index, example in enumerate(questions[:count])]


def _slug(arm: str) -> str:
    return arm.lower().replace("+", "_")
