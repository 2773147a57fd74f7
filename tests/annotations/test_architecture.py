"""Boundaries the layout depends on (docs/architecture.md): the web side never loads torch, tasks or worker;
only dispatch publishes Celery work; no import cycles; ml/ never imports Django; files stay readable."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("annotations", "keyweb", "ml")
# The web image installs only the base dependencies (docker/web.Dockerfile): the ml extras must stay out.
WEB_FORBIDDEN = (
    "torch",
    "annotations.tasks",
    "annotations.worker",
    "mir_eval",
    "nnAudio",
    "scipy",
    "einops",
    "matplotlib",
)

# Imports every module a URL pattern leads to (view functions, class-based and DRF views), resolves a
# few URLs the way a request would, and prints which forbidden modules got loaded.
URL_WALK = """
import importlib, sys, django
django.setup()
from django.urls import URLPattern, URLResolver, get_resolver, resolve

def callbacks(patterns):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from callbacks(pattern.url_patterns)
        elif isinstance(pattern, URLPattern):
            yield pattern.callback

modules = set()
for callback in callbacks(get_resolver().url_patterns):
    for owner in (callback, getattr(callback, "view_class", None), getattr(callback, "cls", None)):
        if owner is not None and getattr(owner, "__module__", None):
            modules.add(owner.__module__)
for name in sorted(modules):
    importlib.import_module(name)
for path in ("/", "/label/", "/api/v1/queue/next", "/api/v1/tracks", "/dashboard/"):
    resolve(path)
import annotations.admin
print(len(modules))
print("loaded:" + ",".join(name for name in %r if name in sys.modules or any(m.startswith(name + ".") for m in sys.modules)))
"""


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={
            "DJANGO_SETTINGS_MODULE": "keyweb.settings",
            "PATH": "/usr/bin:/bin",
            "KEYWEB_ENV": "test",
            "KEYWEB_VAR_DIR": "/tmp/keyweb-arch-test",
        },
    )


def test_every_module_reachable_from_the_urls_leaves_torch_tasks_and_worker_unloaded():
    result = _run(URL_WALK % (WEB_FORBIDDEN,))
    assert result.returncode == 0, result.stderr
    n_modules, loaded = result.stdout.strip().splitlines()
    assert int(n_modules) >= 10  # the walk found the page and API view modules, not just one
    assert loaded == "loaded:", f"the web side {loaded}"


def _project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Project modules `name` imports anywhere in its file (function-local imports included)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                parent = ".".join(base + ([node.module] if node.module else []))
            else:
                parent = node.module or ""
            targets = [f"{parent}.{alias.name}" for alias in node.names] + [parent]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and not _is_empty_package(modules[target]):
                found.add(target)
    return found


def _is_empty_package(path: Path) -> bool:
    """An __init__.py with nothing but a docstring: importing a submodule loads it, but it imports nothing."""
    if path.name != "__init__.py":
        return False
    body = ast.parse(path.read_text()).body
    return all(isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body)


def test_no_import_cycles_even_through_function_local_imports():
    modules = _project_modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for successor in graph[node]:
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in graph:
        if node not in index:
            visit(node)
    assert cycles == []


def test_only_dispatch_publishes_work_and_only_tasks_chain_it():
    publishers = []
    for name, path in _project_modules().items():
        if name in ("annotations.dispatch", "annotations.tasks"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("delay", "apply_async", "send_task"):
                publishers.append(f"{name}:{node.lineno}")
    assert publishers == []


def test_the_web_side_never_imports_tasks_or_worker():
    modules = _project_modules()
    offenders = []
    for name, path in modules.items():
        if name.startswith(("annotations.worker", "annotations.tasks", "annotations.management")):
            continue
        if name.startswith("ml"):
            continue
        for target in _imports(name, path, modules):
            if target.startswith(("annotations.tasks", "annotations.worker")):
                offenders.append(f"{name} → {target}")
    assert offenders == []


def test_ml_does_not_import_django():
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "ml").rglob("*.py")
        if any(
            line.strip().startswith(("import django", "from django"))
            for line in path.read_text().splitlines()
        )
    ]
    assert offenders == []


def test_no_source_file_is_over_500_lines():
    long_files = [
        f"{path.relative_to(ROOT)}: {n}"
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts and (n := len(path.read_text().splitlines())) > 500
    ]
    assert long_files == []
