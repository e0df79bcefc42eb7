"""The document collection of `rag.documents`: data files read by `tunesmith.data.readers` (JSONL, JSON, CSV,
Parquet; `rag.columns` maps `id`/`text`/`title` as `data.columns` maps row fields), plain-text files (one document
each, named by the file), or a folder of either."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tunesmith.config.rag_section import RagConfig
from tunesmith.data.fields import key_of
from tunesmith.data.readers import SUFFIXES, data_files, data_suffix, decode_utf8, read_rows
from tunesmith.errors import ConfigError, DataError

TEXT_SUFFIXES = (".txt", ".md")


@dataclass(frozen=True)
class SourceDocument:
    id: str
    text: str
    title: str
    location: str
    """FILE:LINE of a row, or the file of a plain-text document."""


def document_files(config: RagConfig) -> list[Path]:
    """Every file `rag.documents` names, in a fixed order (what the index cache hashes)."""
    if config.documents is None:
        raise ConfigError("rag.documents", "is not set", "name the documents to retrieve from")
    files = [path for path in data_files([config.documents])
             if path.suffix in TEXT_SUFFIXES or data_suffix(path)[0] in SUFFIXES or not path.exists()]
    if not files:
        raise DataError(config.documents, None, f"no document files here (read: {', '.join(SUFFIXES + TEXT_SUFFIXES)})")
    return files


def read_documents(config: RagConfig) -> list[SourceDocument]:
    """Every document, in file order; a document id given twice, or a row without text, is a `DataError`."""
    documents: list[SourceDocument] = []
    for path in document_files(config):
        if path.suffix in TEXT_SUFFIXES:
            text = _read_text(path)
            documents.append(SourceDocument(id=path.stem, text=text, title=path.stem, location=str(path)))
            continue
        documents += [_document_of(row, config.columns) for row in read_rows(path)]
    seen: dict[str, str] = {}
    for document in documents:
        if document.id in seen:
            raise DataError(document.location, None, f"document id {document.id!r} is also the id of "
                            f"{seen[document.id]}", "document ids must be unique (rag.columns.id)")
        seen[document.id] = document.location
    return documents


def _read_text(path: Path) -> str:
    """A plain-text document; one that is binary or not UTF-8 is an error naming it (a stray file in a documents
    folder is the user's to remove or leave out of the glob: skipping it would answer from fewer documents)."""
    if not path.is_file():
        raise DataError(str(path), None, "no such file" if not path.exists() else "not a file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(str(path), None, f"cannot read the document: {exc.strerror}") from None
    return decode_utf8(str(path), raw)


def _document_of(row, columns: dict[str, str]) -> SourceDocument:
    text_key = key_of("text", columns)
    text = row.data.get(text_key)
    if not isinstance(text, str) or not text.strip():
        raise DataError(row.file, row.line, f"no document text under {text_key!r} (keys: {', '.join(row.data)})",
                        "map the text key with rag.columns, e.g. {text: context}")
    raw_id = row.data.get(key_of("id", columns))
    title = row.data.get(key_of("title", columns))
    return SourceDocument(id=row.location if raw_id is None else str(raw_id), text=text,
                    title="" if title is None else str(title), location=row.location)
