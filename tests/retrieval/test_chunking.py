"""Chunking: passages of at most chunk_tokens tokens that cover every token of the document exactly once plus the
overlap, each the exact slice of its document."""

import pytest

from tunesmith.retrieval.chunking import chunk_document, token_windows
from tunesmith.retrieval.documents import SourceDocument


@pytest.mark.parametrize("count,size,overlap", [(0, 4, 1), (3, 4, 1), (4, 4, 1), (10, 4, 1), (57, 16, 5), (16, 8, 0)])
def test_windows_cover_every_token_once_plus_the_overlap(count, size, overlap):
    windows = token_windows(count, size, overlap)
    assert windows[0][0] == 0 and windows[-1][1] == count
    assert all(end - start <= size for start, end in windows)
    for (_, previous_end), (start, _) in zip(windows, windows[1:]):
        assert previous_end - start == overlap  # neighbours share exactly the overlap
    seen = [token for start, end in windows for token in range(start, end)]
    shared = overlap * (len(windows) - 1)
    assert sorted(set(seen)) == list(range(count)) and len(seen) == count + shared


def test_overlap_must_be_below_the_window():
    with pytest.raises(ValueError):
        token_windows(10, 4, 4)


def test_passages_are_slices_of_the_document_that_join_back_to_it(tiny_tokenizer):
    text = "The quick brown fox jumps over the lazy dog. " * 12
    document = SourceDocument(id="fox", text=text, title="Fox", location="docs.jsonl:1")
    passages = chunk_document(document, tiny_tokenizer, size=20, overlap=5)
    tokens = len(tiny_tokenizer(text, add_special_tokens=False)["input_ids"])
    assert len(passages) > 3 and passages[-1].token_end == tokens
    assert all(passage.text in text and passage.document_id == "fox" for passage in passages)
    assert [passage.chunk for passage in passages] == list(range(len(passages)))
    for passage in passages:
        assert len(tiny_tokenizer(passage.text, add_special_tokens=False)["input_ids"]) <= 20 + 1  # BPE may re-split
    # Without overlap the passages are consecutive slices that join back into the whole document.
    consecutive = chunk_document(document, tiny_tokenizer, size=20, overlap=0)
    assert "".join(passage.text for passage in consecutive) == text
