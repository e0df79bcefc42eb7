"""A small document model (text, facts, tables, code, images and grids of titled figures, in sections) and its
three renderers: plain text for terminals, Markdown, and self-contained HTML.

Everything tunesmith shows as a table goes through it: the data check, the base-vs-tuned comparison, the model
card of an export and the run report. Every string in a document is plain text; the renderers do all escaping,
so a pipe or a ``<script>`` in the data can neither break a table nor run in a browser.
"""

from tunesmith.document.blocks import Block, Code, Document, Facts, Figures, Image, Section, Table, Text
from tunesmith.document.render import render_html, render_markdown, render_text, text_table, write_document
from tunesmith.document.values import (
    NOT_AVAILABLE,
    format_duration,
    format_length,
    format_value,
    humanize,
    is_number,
    plain,
)

__all__ = [
    "NOT_AVAILABLE", "Block", "Code", "Document", "Facts", "Figures", "Image", "Section", "Table", "Text",
    "format_duration",
    "format_length", "format_value", "humanize", "is_number", "plain", "render_html", "render_markdown",
    "render_text", "text_table", "write_document",
]
