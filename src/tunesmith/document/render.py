"""Renderers of a `Document`: plain text (terminals, logs), Markdown and self-contained HTML."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from tunesmith.atomic import write_atomic
from tunesmith.document.blocks import Block, Code, Document, Facts, Figures, Image, Table, Text
from tunesmith.document.values import NOT_AVAILABLE

_NUMBER_TEXT = re.compile(r"[+-]?[\d,]*\.?\d+%?")


def numeric_columns(table: Table) -> list[bool]:
    """Which columns (after the first, which names the row) hold only numbers: those are right-aligned so their
    digits line up."""
    def numeric(cell: str) -> bool:
        return cell == NOT_AVAILABLE or _NUMBER_TEXT.fullmatch(cell) is not None

    return [index > 0 and bool(table.rows) and all(numeric(row[index]) for row in table.rows)
            for index in range(len(table.header))]


# ---- plain text -------------------------------------------------------------------------------------------------


def text_table(table: Table) -> list[str]:
    """``a | b`` columns under a ``--+--`` rule, numbers right-aligned, lines without trailing spaces."""
    widths = [max(len(cell) for cell in column) for column in zip(table.header, *table.rows)]
    right = numeric_columns(table)

    def line(cells: list[str]) -> str:
        padded = [cell.rjust(width) if numeric else cell.ljust(width)
                  for cell, width, numeric in zip(cells, widths, right)]
        return " | ".join(padded).rstrip()

    caption = [table.caption] if table.caption else []
    return [*caption, line(table.header), "-+-".join("-" * width for width in widths), *map(line, table.rows)]


def _text_block(block: Block) -> list[str]:
    if isinstance(block, Text):
        return [block.text]
    if isinstance(block, Facts):
        caption = [block.caption] if block.caption else []
        return caption + [f"  {label}: {value}" for label, value in block.items]
    if isinstance(block, Table):
        return text_table(block)
    if isinstance(block, Code):
        return [f"    {line}".rstrip() for line in block.text.rstrip("\n").split("\n")]
    if isinstance(block, Image):
        return [f"[figure: {block.alt}]"]
    if isinstance(block, Figures):
        return [f"[figure: {image.alt}]" for image in block.images]
    raise TypeError(f"unknown document block {block!r}")


def render_text(document: Document) -> str:
    lines = [document.title] + ([document.subtitle] if document.subtitle else [])
    for section in document.sections:
        if section.title:
            lines += ["", section.title]
        for block in section.blocks:
            lines += ["", *_text_block(block)]
    return "\n".join(lines).strip("\n")


# ---- Markdown ---------------------------------------------------------------------------------------------------

_MARKDOWN_SPECIAL = re.compile(r"([\\`*\[\]|])")


def markdown_text(text: str) -> str:
    """Plain text safe in Markdown: HTML-escaped (Markdown passes raw HTML through) and markup characters escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def render_markdown(document: Document) -> str:
    lines = [f"# {markdown_text(document.title)}", ""]
    if document.subtitle:
        lines += [markdown_text(document.subtitle), ""]
    for section in document.sections:
        lines += [f"## {markdown_text(section.title)}", ""]
        for block in section.blocks:
            lines += _markdown_block(block) + [""]
    return "\n".join(lines)


def _markdown_block(block: Block) -> list[str]:
    if isinstance(block, Text):
        return [markdown_text(block.text)]
    if isinstance(block, Facts):
        caption = [f"**{markdown_text(block.caption)}**", ""] if block.caption else []
        return caption + [f"- **{markdown_text(label)}:** {markdown_text(value)}" for label, value in block.items]
    if isinstance(block, Table):
        caption = [f"**{markdown_text(block.caption)}**", ""] if block.caption else []
        header = "| " + " | ".join(markdown_text(cell) for cell in block.header) + " |"
        rule = "|" + "|".join("---:" if numeric else "---" for numeric in numeric_columns(block)) + "|"
        rows = ["| " + " | ".join(markdown_text(cell) for cell in row) + " |" for row in block.rows]
        return caption + [header, rule] + rows
    if isinstance(block, Code):
        # A fence longer than any backtick run inside, so config text can never close it early.
        longest = max((len(run) for run in re.findall(r"`+", block.text)), default=0)
        fence = "`" * max(3, longest + 1)
        return [fence + block.language, block.text.rstrip("\n"), fence]
    if isinstance(block, Image):
        return [f"![{markdown_text(block.alt)}]({block.file_name})"]
    if isinstance(block, Figures):
        lines: list[str] = []
        for image in block.images:
            lines += [f"**{markdown_text(image.alt)}**", "", *_markdown_block(image), ""]
        return lines[:-1]
    raise TypeError(f"unknown document block {block!r}")


# ---- HTML -------------------------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 60rem; margin: 2rem auto;
       padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.25rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; margin-top: 2rem; }
details > summary h2 { display: inline; }
details > summary { cursor: pointer; margin-top: 2rem; }
.subtitle { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.92rem; }
caption { text-align: left; font-weight: 600; padding-bottom: 0.3rem; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.6rem; vertical-align: top; }
thead th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.facts th { text-align: left; background: #fafafa; white-space: nowrap; }
table.facts td { white-space: pre-wrap; word-break: break-word; }
pre { background: #f6f8fa; padding: 0.8rem; overflow-x: auto; font-size: 0.85rem; }
img { max-width: 100%; }
.figures { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 26rem), 1fr)); gap: 1.5rem;
           margin: 1rem 0; }
.figures figure { margin: 0; }
.figures figcaption { font-weight: 600; font-size: 0.92rem; margin-bottom: 0.4rem; }
"""


def render_html(document: Document) -> str:
    escape = html.escape
    body = [f"<h1>{escape(document.title)}</h1>"]
    if document.subtitle:
        body.append(f'<p class="subtitle">{escape(document.subtitle)}</p>')
    for section in document.sections:
        blocks = [_html_block(block) for block in section.blocks]
        if section.folded:
            body += [f"<section>\n<details>\n<summary><h2>{escape(section.title)}</h2></summary>", *blocks,
                     "</details>\n</section>"]
        else:
            body += [f"<section>\n<h2>{escape(section.title)}</h2>", *blocks, "</section>"]
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f"<title>{escape(document.title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>", *body,
        "</body>", "</html>", "",
    ])


def render_html_blocks(blocks: list[Block]) -> str:
    """Blocks as an HTML fragment, escaped as `render_html` escapes them, for a page with its own frame and
    stylesheet (the web UI's run page shows the report's data section so)."""
    return "\n".join(map(_html_block, blocks))


def _html_block(block: Block) -> str:
    escape = html.escape
    if isinstance(block, Text):
        return f"<p>{escape(block.text)}</p>"
    if isinstance(block, Facts):
        caption = f"<caption>{escape(block.caption)}</caption>" if block.caption else ""
        rows = "".join(f"<tr><th>{escape(label)}</th><td>{escape(value)}</td></tr>" for label, value in block.items)
        return f'<table class="facts">{caption}<tbody>{rows}</tbody></table>'
    if isinstance(block, Table):
        caption = f"<caption>{escape(block.caption)}</caption>" if block.caption else ""
        header = "".join(f"<th>{escape(cell)}</th>" for cell in block.header)
        classes = [' class="num"' if numeric else "" for numeric in numeric_columns(block)]
        rows = "".join(
            "<tr>" + "".join(f"<td{cls}>{escape(cell)}</td>" for cls, cell in zip(classes, row)) + "</tr>"
            for row in block.rows
        )
        return f'<table class="grid">{caption}<thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table>'
    if isinstance(block, Code):
        return f"<pre><code>{escape(block.text)}</code></pre>"
    if isinstance(block, Image):
        data = base64.b64encode(block.png).decode("ascii")
        return f'<img alt="{escape(block.alt)}" src="data:image/png;base64,{data}">'
    if isinstance(block, Figures):
        figures = "".join(f"<figure><figcaption>{escape(image.alt)}</figcaption>{_html_block(image)}</figure>"
                          for image in block.images)
        return f'<div class="figures">{figures}</div>'
    raise TypeError(f"unknown document block {block!r}")


def write_document(document: Document, markdown_path: Path, html_path: Path) -> None:
    """Write ``document`` as Markdown (its PNGs beside it, which the Markdown links to) and as self-contained HTML,
    each file atomically."""
    for image in document.images():
        write_atomic(markdown_path.parent / image.file_name, image.png)
    write_atomic(markdown_path, render_markdown(document))
    write_atomic(html_path, render_html(document))
