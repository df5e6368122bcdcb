"""The import graph of src/paperalerts: no circles, and every arrow points down the layers.

Layers, top to bottom: faces (CLI, web, Celery tasks, demo) -> pipeline (steps) -> edges (side
effects) -> core (pure). ``paperalerts.errors`` and the package itself sit beside them and may be
imported from anywhere. See docs/architecture.md.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = "paperalerts"

# What each layer may import (its own layer included); "base" = the package and errors.py.
ALLOWED: dict[str, frozenset[str]] = {
    "base": frozenset({"base"}),
    "core": frozenset({"base", "core"}),
    "edges": frozenset({"base", "core", "edges"}),
    "pipeline": frozenset({"base", "core", "edges", "pipeline"}),
    "faces": frozenset({"base", "core", "edges", "pipeline", "faces"}),
}
# Steps take their settings as values: only faces read the environment's module.
FORBIDDEN: dict[str, frozenset[str]] = {"pipeline": frozenset({"paperalerts.edges.config"})}


def modules(src: Path = SRC) -> dict[str, tuple[Path, bool]]:
    """Every module under src/paperalerts: dotted name -> (file, is a package __init__)."""
    found = {}
    for path in sorted((src / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        found[".".join(parts)] = (path, is_package)
    return found


def imports(name: str, path: Path, is_package: bool, known: set[str]) -> Iterator[str]:
    """The package modules `name` imports anywhere in its file (inside functions and
    TYPE_CHECKING blocks too: a lazy import is still an arrow)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")[: len(name.split(".")) - node.level + is_package]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            # `from pkg import module` imports the module; `from module import name` the module.
            targets = [
                f"{origin}.{a.name}" if f"{origin}.{a.name}" in known else origin
                for a in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import a.b.c` of a non-module attribute
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target


def graph(src: Path = SRC) -> dict[str, set[str]]:
    mods = modules(src)
    known = set(mods)
    return {name: set(imports(name, path, pkg, known)) for name, (path, pkg) in mods.items()}


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] == "errors":
        return "base"
    if parts[1] == "__main__":
        return "faces"
    return parts[1]


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(g[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(g)))
    for v in sorted(g):
        if v not in index:
            visit(v)
    return found


def upward_arrows(g: dict[str, set[str]]) -> list[str]:
    """Each import that runs against the layers, as ``a -> b (layer a may not import layer b)``."""
    bad = []
    for source, targets in sorted(g.items()):
        for target in sorted(targets):
            src_layer, dst_layer = layer(source), layer(target)
            if src_layer not in ALLOWED:
                bad.append(f"{source}: not in a known layer ({', '.join(ALLOWED)})")
            elif dst_layer not in ALLOWED[src_layer]:
                bad.append(f"{source} -> {target} ({src_layer} may not import {dst_layer})")
            elif target in FORBIDDEN.get(src_layer, frozenset()):
                bad.append(f"{source} -> {target} ({src_layer} takes settings as values)")
    return bad


def test_the_graph_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    """The parser counts imports inside functions, `from pkg import module` and relative
    imports as arrows (otherwise a circle could hide in a function body)."""
    pkg = tmp_path / PACKAGE
    (pkg / "core").mkdir(parents=True)
    (pkg / "faces").mkdir()
    for init in (pkg, pkg / "core", pkg / "faces"):
        (init / "__init__.py").write_text("")
    (pkg / "core" / "a.py").write_text("def f():\n    from paperalerts.faces import b\n")
    (pkg / "faces" / "b.py").write_text("from ..core import a\n")
    g = graph(tmp_path)
    assert g["paperalerts.core.a"] == {"paperalerts.faces.b"}
    assert g["paperalerts.faces.b"] == {"paperalerts.core.a"}
    assert cycles(g) == [["paperalerts.core.a", "paperalerts.faces.b"]]
    assert upward_arrows(g) == [
        "paperalerts.core.a -> paperalerts.faces.b (core may not import faces)"
    ]


def test_no_import_circles() -> None:
    """No two modules of the package import each other, directly or round a longer loop."""
    g = graph()
    report = []
    for component in cycles(g):
        members = set(component)
        arrows = [f"  {a} -> {b}" for a in component for b in sorted(g[a] & members)]
        report.append("circle of " + ", ".join(component) + ":\n" + "\n".join(arrows))
    assert not report, "import circles:\n" + "\n".join(report)


def test_every_import_points_down_the_layers() -> None:
    """core imports only core; edges only core and edges; pipeline core, edges and pipeline but
    never edges.config; faces anything; errors.py is importable everywhere."""
    bad = upward_arrows(graph())
    assert not bad, "imports against the layers:\n  " + "\n  ".join(bad)


def test_the_web_app_does_not_build_the_celery_app() -> None:
    """Importing the web app, /metrics and the health routes, and asking for the broker URL,
    loads neither Celery nor the tasks module (which builds a Celery app from the environment
    as it is imported)."""
    code = (
        "import sys\n"
        "import paperalerts.faces.web.app, paperalerts.faces.metrics\n"
        "import paperalerts.faces.health_routes\n"
        "from paperalerts.edges.broker import configured_broker_url\n"
        "from paperalerts.edges.config import Settings\n"
        "configured_broker_url(Settings(broker_url='', database_url='sqlite:///x.db'))\n"
        "print(sorted(m for m in sys.modules\n"
        "             if m == 'celery' or m == 'paperalerts.faces.tasks'))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
