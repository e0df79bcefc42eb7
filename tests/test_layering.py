"""The package layout holds: imports run one way (a stage uses lower stages, never the reverse), no two modules
import each other, and no module imports a tunesmith module inside a function (only the CLI does, so that
`tunesmith --help` does not load torch)."""

from __future__ import annotations

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src"
LAYERS = [
    {"errors", "extras", "text", "atomic", "json_files", "document", "distributed", "csv_cells", "threads"},
    {"config"}, {"results"}, {"run_dir", "sweep_folder", "promotion", "tracking"}, {"models"}, {"data"}, {"starter"},
    {"retrieval"}, {"predict"}, {"train"}, {"plan"}, {"evaluate"}, {"review"}, {"export"}, {"gate"}, {"report"},
    {"monitor"}, {"label"}, {"web"}, {"serve"}, {"pipeline"}, {"experiments"}, {"ui"},
    {"cli", "__main__"},
]
"""Lowest first: a package may import its own layer's modules and lower layers only."""


def modules() -> dict[str, Path]:
    found = {}
    for path in (SOURCE / "tunesmith").rglob("*.py"):
        parts = path.relative_to(SOURCE).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports_of(path: Path, known: dict[str, Path]) -> list[tuple[str, bool]]:
    """``(imported tunesmith module, inside a function)`` for every import of ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    in_function = {id(node) for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
                   for node in ast.walk(fn)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tunesmith"):
            submodules = [f"{node.module}.{alias.name}" for alias in node.names]
            targets = [node.module] + [name for name in submodules if name in known]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names if a.name.startswith("tunesmith")]
        else:
            continue
        found += [(target, id(node) in in_function) for target in targets if target in known]
    return found


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "tunesmith"


def layer_of(package: str) -> int:
    return next(index for index, layer in enumerate(LAYERS) if package in layer)


def test_packages_import_only_lower_layers():
    known = modules()
    upward = []
    for module, path in known.items():
        if module == "tunesmith":
            continue
        for target, _ in imports_of(path, known):
            if target == "tunesmith":
                continue  # the version string
            if layer_of(package_of(target)) > layer_of(package_of(module)):
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_no_import_cycles():
    known = modules()
    graph = {module: {target for target, _ in imports_of(path, known) if target != module}
             for module, path in known.items()}

    def reaches(start: str, goal: str) -> bool:
        seen, stack = set(), [start]
        while stack:
            for nxt in graph.get(stack.pop(), ()):
                if nxt == goal:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return False

    cycles = sorted({tuple(sorted((a, b))) for a in graph for b in graph[a] if reaches(b, a)})
    assert cycles == []


def test_tunesmith_modules_are_imported_at_the_top_except_by_the_cli():
    known = modules()
    lazy = [f"{module} -> {target}" for module, path in known.items() if not module.startswith("tunesmith.cli")
            for target, inside in imports_of(path, known) if inside]
    assert lazy == []


NEVER_IMPORTS = {
    "export": {"train"},  # an export ships the trained weights; it never needs the training loop
    "serve": {"train", "gate"},  # it reads a run's gate.json (`tunesmith.results.gate`), never runs the gate
    "gate": {"train"},
    "ui": {"pipeline", "train", "experiments"},  # the UI reads run folders and serves through `serve`
    "monitor": {"serve", "predict"},  # it reads request logs and run folders, never a model or the engine
    "label": {"serve", "predict", "train"},  # it reads request logs and asks a teacher over HTTP, never a model
    "web": {"serve", "ui"},  # the HTTP layer both apps are built on knows neither of them
}
"""Packages a package may not import, directly or through another package, although their layers would allow it."""


def reached_wrongly(rules: dict[str, set[str]]) -> list[str]:
    """``module -> target`` for every module that reaches, through any chain of imports, a package its package may
    not. Importing ``a.b.c`` runs ``a/__init__.py`` and ``a/b/__init__.py`` too, so those count as imported."""
    known = modules()

    def with_packages(target: str) -> set[str]:
        parts = target.split(".")
        return {target} | {".".join(parts[:end]) for end in range(2, len(parts))} & set(known)

    graph = {module: {name for target, _ in imports_of(path, known) for name in with_packages(target)}
             for module, path in known.items()}
    found = []
    for module in known:
        forbidden = rules.get(package_of(module), set())
        seen, stack = set(), [module]
        while stack:
            for target in graph.get(stack.pop(), ()):
                if target not in seen:
                    seen.add(target)
                    stack.append(target)
        found += [f"{module} -> {target}" for target in sorted(seen) if package_of(target) in forbidden]
    return found


def test_packages_never_reach_what_they_must_not():
    assert reached_wrongly(NEVER_IMPORTS) == []
