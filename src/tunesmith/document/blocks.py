"""The blocks a document is made of. Plain text only: renderers do all escaping."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Facts:
    """``label: value`` pairs, optionally under a caption."""

    items: list[tuple[str, str]]
    caption: str | None = None


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]
    caption: str | None = None


@dataclass(frozen=True)
class Code:
    text: str
    language: str = ""


@dataclass(frozen=True)
class Image:
    """A PNG: a linked file next to the Markdown, a base64 data URI inside the HTML, its alt text in a terminal."""

    file_name: str
    png: bytes
    alt: str


@dataclass(frozen=True)
class Figures:
    """Images side by side (in HTML a grid of as many columns as fit), each under its ``alt`` text as a visible
    title: say there what the figure shows, over which window, in which unit."""

    images: list[Image]


Block = Union[Text, Facts, Table, Code, Image, Figures]


@dataclass(frozen=True)
class Section:
    title: str
    blocks: list[Block]
    folded: bool = False
    """Shown collapsed in HTML (a click opens it): long reference material such as the resolved config."""


@dataclass(frozen=True)
class Document:
    title: str
    subtitle: str = ""
    sections: list[Section] = field(default_factory=list)

    def images(self) -> list[Image]:
        return [image for section in self.sections for block in section.blocks
                for image in ([block] if isinstance(block, Image) else block.images if isinstance(block, Figures)
                              else [])]
