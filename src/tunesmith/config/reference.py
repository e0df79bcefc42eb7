"""Generate the manual's reference tables from the code: the config keys (from the config models), the row formats
and the data-check findings (from `tunesmith.config.vocabulary`); and the one-line summary of a key that a
generated config (`tunesmith init`) writes beside it (`key_summary`).

`python -m tunesmith.config.reference [config|formats|findings]` prints one table (all three by default);
`python -m tunesmith.config.reference page > docs/reference/config.md` writes the config reference page whole.
Tests keep the manual's copies current (the formats and findings tables are in `docs/data.md`).
"""

from __future__ import annotations

import re
import sys
import types
import typing

from pydantic import BaseModel

from tunesmith.config.schema import RunConfig
from tunesmith.config.vocabulary import FINDING_KINDS, ROW_FORMATS


def _type_name(annotation) -> str:
    if typing.get_origin(annotation) is typing.Literal:
        return " \\| ".join(f"`{value}`" for value in typing.get_args(annotation))
    if typing.get_origin(annotation) is typing.Annotated:  # a constrained type: its constraints are in the docs
        return _type_name(typing.get_args(annotation)[0])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and any(
            typing.get_origin(member) in (typing.Literal, typing.Annotated) or isinstance(member, type) and
            issubclass(member, BaseModel) for member in typing.get_args(annotation)):
        return " \\| ".join(_type_name(member) for member in typing.get_args(annotation))
    text = getattr(annotation, "__name__", None) or str(annotation)
    return _cell(re.sub(r"\bNone(Type)?\b", "null", text.replace("typing.", "")))


def _default(field) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
        return "" if isinstance(value, BaseModel) else f"`{value}`"
    if field.is_required():
        return "required"
    # A multi-line default (a prompt template) is shown with its line breaks written out: a table cell is one line.
    return f"`{'null' if field.default is None else field.default}`".replace("\n", "\\n")


def _optional_section(annotation) -> type[BaseModel] | None:
    """The section type of ``ConfigSection | None`` (a section that is absent unless given), else None."""
    members = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else ()
    sections = [member for member in members if isinstance(member, type) and issubclass(member, BaseModel)]
    return sections[0] if len(sections) == 1 and type(None) in members else None


def _list_item_model(annotation) -> type[BaseModel] | None:
    """The section type of ``list[ConfigSection]`` or ``list[ConfigSection] | None``, else None."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if typing.get_origin(candidate) is list:
            (item,) = typing.get_args(candidate)
            if isinstance(item, type) and issubclass(item, BaseModel):
                return item
    return None


_SENTENCE_END = re.compile(r"(?<!e\.g\.)(?<!i\.e\.)(?<=[.!?])\s+(?=[A-Z`])")
"""Where a docstring's first sentence ends: a full stop and a capital or a code span, but not "e.g." or "i.e."."""


def key_summary(key: str) -> str:
    """The first sentence of the docstring of the config key ``key`` (dotted, e.g. ``data.split.test``)."""
    *sections, name = key.split(".")
    model: type[BaseModel] = RunConfig
    for section in sections:
        annotation = model.model_fields[section].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            raise KeyError(f"{key}: {section} is not a section")
        model = annotation
    doc = " ".join((model.model_fields[name].description or "").split())
    return _SENTENCE_END.split(doc, maxsplit=1)[0]


def reference_rows(model: type[BaseModel] = RunConfig, prefix: str = "") -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            rows += reference_rows(annotation, f"{key}.")
            continue
        doc = " ".join((field.description or "").split()).replace("|", "\\|")
        item = _list_item_model(annotation)
        if item is not None:  # a list of sections: the list, then each item's keys as `key[].field`
            rows.append(f"| `{key}` | list \\| null | {_default(field)} | {doc} |")
            rows += reference_rows(item, f"{key}[].")
            continue
        rows.append(f"| `{key}` | {_type_name(annotation)} | {_default(field)} | {doc} |")
        section = _optional_section(annotation)
        if section is not None:  # a section that is null unless given: its keys, when it is
            rows += reference_rows(section, f"{key}.")
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def reference_markdown() -> str:
    return "\n".join(["| key | type | default | meaning |", "|---|---|---|---|", *reference_rows()])


REFERENCE_PAGE = "docs/reference/config.md"
"""Where the config reference page lives in the repository (`reference_page` writes it)."""


def reference_page() -> str:
    """The config reference page of the manual, whole: how to read and regenerate it, then one table per top-level
    key of the config, in the config's order."""
    header = ["| key | type | default | meaning |", "|---|---|---|---|"]
    sections = []
    for name in RunConfig.model_fields:
        rows = [row for row in reference_rows() if row.startswith((f"| `{name}` ", f"| `{name}.", f"| `{name}[]"))]
        sections += [f"## `{name}`", "", *header, *rows, ""]
    return "\n".join([
        "# Config reference",
        "",
        "<!-- Generated from the config models' docstrings: `python -m tunesmith.config.reference page > "
        f"{REFERENCE_PAGE}`. tests/config/test_reference.py fails when this page is stale. -->",
        "",
        "A run is one YAML file of these sections and keys. Every key has a default; only the data must be given. "
        "Unknown keys and bad values are errors that name the key and the allowed values. `--set key=value` "
        "overrides a key on the command line, and `tunesmith config CONFIG` prints a config with every default "
        "filled in. A key written `a.b[].c` is a key of each item of the list `a.b`.",
        "",
        *sections,
    ])


def formats_markdown() -> str:
    rows = [f"| `{name}` | {_cell(keys)} | {_cell(becomes)} |" for name, (keys, becomes) in ROW_FORMATS.items()]
    return "\n".join(["| format | keys | becomes |", "|---|---|---|", *rows])


def findings_markdown() -> str:
    rows = [f"| `{kind}` | {_cell(meaning)} |" for kind, meaning in FINDING_KINDS.items()]
    return "\n".join(["| finding | what |", "|---|---|", *rows])


TABLES = {"config": reference_markdown, "formats": formats_markdown, "findings": findings_markdown}


if __name__ == "__main__":
    if sys.argv[1:] == ["page"]:
        sys.stdout.write(reference_page())
    else:
        print("\n\n".join(TABLES[name]() for name in (sys.argv[1:] or TABLES)))
