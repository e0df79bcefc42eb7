"""The manual stays in step with the code: every page is in the nav, every package has its API page and its row in
the architecture's layer table, every command is in the commands table, the README stays short and points at pages
that exist, and BENCHMARKS.md speaks of commands any user can run. `mkdocs build --strict` (in `make test`) checks
the links, anchors and docstrings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tunesmith.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README_MAX_LINES = 250
BUILD_ENVIRONMENT_WORDS = re.compile(
    r"device run|\bcarr(y|ied)\b|\$OUT\b|KINDS\.md|\blent\b|files_at|\bwarm|session|\.whl\b|\blease\b", re.IGNORECASE)
"""Words that describe how one particular build environment's machines are reached, not a command a user runs."""


def nav_pages(entries) -> list[str]:
    pages = []
    for entry in entries:
        if isinstance(entry, str):
            pages.append(entry)
        elif isinstance(entry, dict):
            for value in entry.values():
                pages += nav_pages(value) if isinstance(value, list) else [value]
    return pages


def packages() -> list[str]:
    """Every package and top-level module of tunesmith (the units of the layer table and the API pages)."""
    source = ROOT / "src" / "tunesmith"
    found = [path.name for path in source.iterdir() if (path / "__init__.py").is_file()]
    found += [path.stem for path in source.glob("*.py") if path.stem not in ("__init__", "__main__")]
    return sorted(found)


def section(page: Path, heading: str) -> str:
    text = page.read_text(encoding="utf-8")
    start = text.index(f"\n{heading}\n")
    end = text.find("\n## ", start + len(heading) + 2)
    return text[start:end if end != -1 else len(text)]


def test_every_page_is_in_the_nav_and_every_nav_entry_is_a_page():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    in_nav = nav_pages(config["nav"])
    on_disk = sorted(str(path.relative_to(DOCS)) for path in DOCS.rglob("*.md"))
    assert sorted(in_nav) == on_disk
    assert len(in_nav) == len(set(in_nav))


@pytest.mark.parametrize("name", packages())
def test_every_package_has_an_api_page_and_a_row_in_the_layer_table(name):
    page = DOCS / "api" / f"{name}.md"
    assert page.is_file() and f"::: tunesmith.{name}\n" in page.read_text(encoding="utf-8"), (
        f"docs/api/{name}.md should hold `::: tunesmith.{name}` (and be in mkdocs.yml's nav)")
    layers = section(DOCS / "architecture.md", "## Layers")
    assert f"`{name}`" in layers, f"docs/architecture.md's layer table has no row naming `{name}`"


def test_every_command_is_in_the_commands_table():
    table = section(DOCS / "getting-started.md", "## The commands")
    commands = build_parser()._subparsers._group_actions[0].choices
    missing = [name for name in commands if f"`tunesmith {name}" not in table]
    assert missing == []


def test_the_readme_is_short_and_its_links_exist():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= README_MAX_LINES
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    assert links and [link for link in links if not (ROOT / link).exists()] == []


def test_benchmarks_speak_of_commands_any_user_can_run():
    text = (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8")
    found = [(number, line) for number, line in enumerate(text.splitlines(), 1) if BUILD_ENVIRONMENT_WORDS.search(line)]
    assert found == []


def test_every_benchmark_section_has_a_date_and_a_machine():
    text = (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8")
    sections = re.split(r"\n## ", text)[1:]
    undated = [body.splitlines()[0] for body in sections
               if not re.search(r"\b20\d\d-\d\d-\d\d\b", body) or "machine" not in body.lower()]
    assert undated == []
