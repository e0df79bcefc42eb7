"""Documents → passages of at most `rag.chunk_tokens` tokens of the fine-tuned model's tokenizer, neighbours
sharing `rag.chunk_overlap` tokens. A passage's text is the exact slice of its document that its tokens cover
(found from the tokenizer's character offsets), so no text is invented or lost by decoding."""

from __future__ import annotations

from dataclasses import dataclass

from tunesmith.retrieval.documents import SourceDocument


@dataclass(frozen=True)
class Passage:
    document_id: str
    title: str
    text: str
    chunk: int
    """0 for a document's first passage."""
    token_start: int
    token_end: int
    """The passage covers the document's tokens ``[token_start, token_end)``."""


def token_windows(count: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """``[start, end)`` windows over ``count`` tokens: each ``size`` long (the last may be shorter), starting
    ``size - overlap`` after the previous, the last one ending at ``count``. One empty window for no tokens."""
    if overlap >= size:
        raise ValueError(f"overlap {overlap} must be below the window size {size}")
    windows, start = [], 0
    while True:
        end = min(start + size, count)
        windows.append((start, end))
        if end >= count:
            return windows
        start = end - overlap


def chunk_document(document: SourceDocument, tokenizer, size: int, overlap: int) -> list[Passage]:
    encoded = tokenizer(document.text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = encoded["offset_mapping"]
    passages = []
    for index, (start, end) in enumerate(token_windows(len(offsets), size, overlap)):
        # From the first covered token's start to the last one's end; the first passage also keeps any leading
        # text no token covers (whitespace some tokenizers strip), the last one any trailing text.
        first_char = 0 if start == 0 or not offsets else offsets[start][0]
        last_char = len(document.text) if end == len(offsets) else offsets[end - 1][1]
        passages.append(Passage(document.id, document.title, document.text[first_char:last_char], index, start, end))
    return passages
