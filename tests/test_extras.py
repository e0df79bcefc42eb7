"""The core runs without the optional parts: with every package of an extra hidden (as if not installed), each core
module imports, `tunesmith --help`, `tunesmith run --help` and `data check` work, and each command of an extra
says in one line which extra to install. `tunesmith.extras.EXTRAS` matches pyproject.toml's extras, and the core
and the extras together cover every third-party import of the source."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tunesmith.cli import COMMAND_EXTRAS, HANDLERS
from tunesmith.extras import EXTRAS, TRACKER_EXTRAS, MissingExtraError

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src" / "tunesmith"
OPTIONAL_PACKAGES = {"web", "serve", "ui", "experiments"}
"""The tunesmith packages that need an extra to import."""
CUDA_ONLY = {"liger_kernel", "bitsandbytes"}
"""Imported only on a CUDA machine that asked for them (`train.kernels`, `method: qlora`), each with its own check."""

HIDER = '''
import sys

HIDDEN = {hidden!r}


class Hiding:
    """Wraps a finder of sys.meta_path so that the hidden packages are found nowhere, as if not installed."""

    def __init__(self, finder):
        self.finder = finder

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN or not hasattr(self.finder, "find_spec"):
            return None
        return self.finder.find_spec(name, path, target)

    def __getattr__(self, name):
        return getattr(self.finder, name)


sys.meta_path[:] = [Hiding(finder) for finder in sys.meta_path]
'''


# ---- what pyproject.toml declares ------------------------------------------------------------------------------


@cache
def project() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def requirements_of(extra: str) -> set[str]:
    """The distributions an extra installs, its references to other extras (``tunesmith[serve]``) followed."""
    names = set()
    for line in project()["optional-dependencies"][extra]:
        requirement = Requirement(line)
        if canonicalize_name(requirement.name) == "tunesmith":
            names |= {name for included in requirement.extras for name in requirements_of(included)}
        else:
            names.add(canonicalize_name(requirement.name))
    return names


@cache
def brought_by_the_core() -> frozenset[str]:
    """The installed distributions the core dependencies bring, directly or through theirs."""
    seen: set[str] = set()
    todo = [Requirement(line).name for line in project()["dependencies"]]
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        for line in importlib.metadata.requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return frozenset(seen)


@cache
def installed_modules() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()  # reads every installed distribution's file list


def distributions_of(module: str) -> set[str]:
    return {canonicalize_name(name) for name in installed_modules().get(module, [])}


def hidden_modules() -> list[str]:
    """The modules of the extras that no core dependency brings along (jinja2 of the UI comes with torch)."""
    return sorted({module for modules in EXTRAS.values() for module in modules
                   if not distributions_of(module) <= brought_by_the_core()})


def test_each_extra_of_the_code_is_the_extra_of_pyproject():
    for extra, modules in EXTRAS.items():
        provided = set().union(*(distributions_of(module) for module in modules))
        assert provided == requirements_of(extra), extra


def test_the_all_extra_is_every_extra_and_no_core_dependency_is_optional():
    declared = set(project()["optional-dependencies"])
    assert declared == set(EXTRAS) | set(TRACKER_EXTRAS) | {"all", "dev", "qlora"}
    every = set().union(*(requirements_of(extra) for extra in EXTRAS))
    assert requirements_of("all") == every
    assert not every & {canonicalize_name(Requirement(line).name) for line in project()["dependencies"]}
    assert {extra for extras in COMMAND_EXTRAS.values() for extra in extras} <= set(EXTRAS)
    assert set(COMMAND_EXTRAS) <= set(HANDLERS)
    assert hidden_modules() == sorted(set().union(*EXTRAS.values()) - {"jinja2"})


def test_every_third_party_import_is_core_or_an_extra():
    optional = set().union(*EXTRAS.values(), *TRACKER_EXTRAS.values())
    uncovered = set()
    for path in SOURCE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for top in {name.partition(".")[0] for name in names}:
                if top in sys.stdlib_module_names or top in {"tunesmith", "__future__"} | optional | CUDA_ONLY:
                    continue
                if not distributions_of(top) or not distributions_of(top) <= brought_by_the_core():
                    uncovered.add(f"{path.relative_to(SOURCE)}: {top}")
    assert sorted(uncovered) == []


# ---- with the optional packages hidden -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def core_only(tmp_path_factory) -> dict[str, str]:
    """The environment of a Python that finds none of `hidden_modules` (a sitecustomize first on PYTHONPATH)."""
    folder = tmp_path_factory.mktemp("core-only")
    (folder / "sitecustomize.py").write_text(HIDER.format(hidden=hidden_modules()), encoding="utf-8")
    paths = [str(folder), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def run_python(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def test_every_core_module_imports(core_only):
    core = sorted(".".join(("tunesmith", *path.relative_to(SOURCE).with_suffix("").parts)).removesuffix(".__init__")
                  for path in SOURCE.rglob("*.py")
                  if path.relative_to(SOURCE).parts[0] not in OPTIONAL_PACKAGES and path.stem != "__main__")
    script = (
        "import importlib, importlib.util, sys\n"
        f"assert not any(importlib.util.find_spec(name) for name in {hidden_modules()!r}), 'not hidden'\n"
        f"for module in {core!r}:\n"
        "    importlib.import_module(module)\n"
        "print(len(sys.modules))\n"
    )
    result = run_python(core_only, "-c", script)
    assert result.returncode == 0, result.stderr
    assert {"tunesmith.pipeline", "tunesmith.report", "tunesmith.cli", "tunesmith.review.judge"} <= set(core)


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"]])
def test_help_works(core_only, args):
    result = run_python(core_only, "-m", "tunesmith.cli", *args)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: tunesmith")


@pytest.mark.parametrize(("args", "extras"), [
    (["serve", "x"], "'serve' extra: pip install 'tunesmith[serve]'"),
    (["ui"], "'ui' extra: pip install 'tunesmith[ui]'"),
    (["sweep", "x.yaml"], "'sweep' extra: pip install 'tunesmith[sweep]'"),
    (["compare-rag", "x.yaml"], "'rag' extra: pip install 'tunesmith[rag]'"),
    (["rag", "index", "x.yaml"], "'rag' extra: pip install 'tunesmith[rag]'"),
    (["rag", "query", "x.yaml", "a question"], "'rag' extra: pip install 'tunesmith[rag]'"),
])
def test_a_command_of_a_missing_extra_names_it_in_one_line(core_only, tmp_path, args, extras):
    result = run_python(core_only, "-m", "tunesmith.cli", *args, cwd=tmp_path)
    command = " ".join(args[:2] if args[0] == "rag" else args[:1])
    assert (result.returncode, result.stderr) == (2, f"tunesmith: error: tunesmith {command} needs the {extras}\n")


def test_data_check_runs(core_only, tmp_path, tiny_model_dir, write_jsonl):
    data = write_jsonl(tmp_path / "data.jsonl", [{"prompt": f"Question {i}?", "completion": f"Answer {i}."}
                                                 for i in range(12)])
    result = run_python(core_only, "-m", "tunesmith.cli", "data", "check", str(data),
                        "--set", f"model.name={tiny_model_dir}", cwd=tmp_path)
    assert result.returncode in (0, 1), result.stderr
    assert result.stdout.startswith("Data check:") and "Traceback" not in result.stderr


def test_a_run_with_retrieved_rows_names_the_rag_extra(core_only, tmp_path, tiny_model_dir, write_jsonl):
    write_jsonl(tmp_path / "train.jsonl", [{"prompt": f"Where is volcano {i}?", "completion": "Sicily."}
                                           for i in range(12)])
    write_jsonl(tmp_path / "docs.jsonl", [{"id": "etna", "text": "Mount Etna is an active volcano in Sicily."}])
    config = {"model": {"name": str(tiny_model_dir)}, "data": {"train": "train.jsonl"},
              "output": {"dir": str(tmp_path / "runs")},
              "rag": {"documents": "docs.jsonl", "answer_with_context": True}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    result = run_python({**core_only, "TUNESMITH_CACHE": str(tmp_path / "cache")}, "-m", "tunesmith.cli", "run",
                        "config.yaml", cwd=tmp_path)
    assert (result.returncode, result.stderr.splitlines()[-1:]) == (
        2, ["tunesmith: error: tunesmith run needs the 'rag' extra: pip install 'tunesmith[rag]'"]), result.stderr
    assert "Traceback" not in result.stderr


def test_several_missing_extras_are_named_in_one_install_line():
    assert str(MissingExtraError("tunesmith x", ["rag", "sweep"])) == (
        "tunesmith x needs the 'rag' and 'sweep' extras: pip install 'tunesmith[rag,sweep]'")
