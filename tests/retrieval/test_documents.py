"""The document collection: plain-text files that are not UTF-8 text are an error naming the file (and the first
bad byte), never a traceback and never silently skipped."""

from __future__ import annotations

import pytest

from tunesmith.config.rag_section import RagConfig
from tunesmith.errors import DataError
from tunesmith.retrieval.documents import read_documents


def test_text_documents_are_read_one_per_file(tmp_path):
    (tmp_path / "a.txt").write_text("\ufeffParis is in France.", encoding="utf-8")  # a BOM is dropped
    (tmp_path / "b.md").write_text("# Etna\nA volcano.", encoding="utf-8")
    documents = read_documents(RagConfig(documents=str(tmp_path)))
    assert [(document.id, document.text) for document in documents] == [
        ("a", "Paris is in France."), ("b", "# Etna\nA volcano.")]


@pytest.mark.parametrize(("content", "problem"), [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", ": not UTF-8 text (it looks like UTF-16/UTF-32 or a binary file)"),
    ("line one\nCaf\u00e9".encode("latin-1"),
     ":2: not valid UTF-8: byte 0xe9 at byte offset 12 (column 4 of the line)"),
])
def test_a_document_that_is_not_utf8_text_names_the_file(tmp_path, content, problem):
    (tmp_path / "a.txt").write_text("fine", encoding="utf-8")
    (tmp_path / "b.txt").write_bytes(content)
    with pytest.raises(DataError) as caught:
        read_documents(RagConfig(documents=str(tmp_path / "*.txt")))
    assert str(caught.value) == f"{tmp_path / 'b.txt'}{problem} (save the file as UTF-8)"
