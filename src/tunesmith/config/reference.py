"""Generate the manual's reference tables from the code: the config keys (from the config models: each key's type,
default, whether a resume or a command on a run folder may change it, and meaning), the row formats and the
data-check findings (from `tunesmith.config.vocabulary`); and the one-line summary of a key that a generated config
(`tunesmith init`) writes beside it (`key_summary`).

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

from tunesmith.config.changes import resumable, run_folder_setting
from tunesmith.config.schema import RunConfig
from tunesmith.config.section import list_item_section, section_type
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


_SENTENCE_END = re.compile(r"(?<!e\.g\.)(?<!i\.e\.)(?<=[.!?])\s+(?=[A-Z`])")
"""Where a docstring's first sentence ends: a full stop and a capital or a code span, but not "e.g." or "i.e."."""


def key_summary(key: str) -> str:
    """The first sentence of the docstring of the config key ``key`` (dotted, e.g. ``data.split.test``)."""
    *sections, name = key.split(".")
    model: type[BaseModel] = RunConfig
    for section in sections:
        inner = section_type(model.model_fields[section].annotation)
        if inner is None:
            raise KeyError(f"{key}: {section} is not a section")
        model = inner
    doc = " ".join((model.model_fields[name].description or "").split())
    return _SENTENCE_END.split(doc, maxsplit=1)[0]


def may_change_on(key: str) -> str:
    """When a key may change after its run started (`tunesmith.config.changes`): ``resume``, ``resume, run folder``,
    or ``—`` (never: it defines the run). A key of a list's items (``data.sources[].path``) is the list's."""
    key = key.replace("[]", "")
    return ", ".join(["resume"] * resumable(key) + ["run folder"] * run_folder_setting(key)) or "—"


def reference_rows(model: type[BaseModel] = RunConfig, prefix: str = "") -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        annotation = field.annotation
        doc = " ".join((field.description or "").split()).replace("|", "\\|")
        section = section_type(annotation)
        if section is not None:  # its keys; an optional section's own row first (null leaves it out)
            if annotation is not section:
                rows.append(f"| `{key}` | {_type_name(annotation)} | {_default(field)} | {may_change_on(f'{key}.')} | "
                            f"{doc} |")
            rows += reference_rows(section, f"{key}.")
            continue
        item = list_item_section(annotation)
        if item is not None:  # a list of sections: the list, then each item's keys as `key[].field`
            rows.append(f"| `{key}` | list \\| null | {_default(field)} | {may_change_on(key)} | {doc} |")
            rows += reference_rows(item, f"{key}[].")
            continue
        rows.append(f"| `{key}` | {_type_name(annotation)} | {_default(field)} | {may_change_on(key)} | {doc} |")
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


_REFERENCE_HEADER = ["| key | type | default | may change on | meaning |", "|---|---|---|---|---|"]


def reference_markdown() -> str:
    return "\n".join([*_REFERENCE_HEADER, *reference_rows()])


REFERENCE_PAGE = "docs/reference/config.md"
"""Where the config reference page lives in the repository (`reference_page` writes it)."""


def reference_page() -> str:
    """The config reference page of the manual, whole: how to read and regenerate it, then one table per top-level
    key of the config, in the config's order."""
    every_row = reference_rows()
    sections = []
    for name in RunConfig.model_fields:
        rows = [row for row in every_row if row.startswith((f"| `{name}` ", f"| `{name}.", f"| `{name}[]"))]
        sections += [f"## `{name}`", "", *_REFERENCE_HEADER, *rows, ""]
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
        "*may change on*: `resume`, a `--resume` may change the key; `run folder`, so may `--set` on a command on a "
        "run folder (`eval`, `compare`, `export`, `report`, `chat`, `generate`, `review create`); `—`, the key defines "
        "the run and never changes.",
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
