"""exil installs one name, ``exil``: every module of the repository's folders imports as ``exil.<folder>...``,
no source file imports a folder by its bare name (which would work in the repository and fail in the wheel,
or pick up a user's own ``common``), ``exil.common`` has no import circle, and the version has one source."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tests.conftest import ROOT

FOLDERS = ("common", "alice", "caipi", "xal", "exbl")
SOURCES = [p for d in (*FOLDERS, "exil", "reproduce", "benchmarks", "tests") for p in (ROOT / d).rglob("*.py")]


def _imports(path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def test_no_source_imports_a_folder_by_its_bare_name():
    bare = [f"{p.relative_to(ROOT)}:{line}: {name}" for p in SOURCES for line, name in _imports(p)
            if name.split(".")[0] in FOLDERS]
    assert not bare, "import these as exil.<name>:\n" + "\n".join(bare)


def test_every_module_imports_under_exil_and_nothing_bare_is_loaded():
    code = ("import importlib, pkgutil, sys, exil\n"
            "names = [m.name for m in pkgutil.walk_packages(exil.__path__, 'exil.')]\n"
            "names += [m.name for f in ('common', 'alice', 'caipi', 'xal', 'exbl')"
            " for m in pkgutil.walk_packages(importlib.import_module('exil.' + f).__path__, f'exil.{f}.')]\n"
            "names = sorted(n for n in set(names) if not n.endswith('__main__'))\n"
            "for n in names: importlib.import_module(n)\n"
            "bare = sorted(m for m in sys.modules if m.split('.')[0] in ('common', 'alice', 'caipi', 'xal', 'exbl'))\n"
            "print(len(names), bare)\n")
    p = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    count, bare = p.stdout.strip().splitlines()[-1].split(" ", 1)
    assert int(count) > 100 and bare.strip() == "[]", p.stdout


def _module_of(path):
    rel = path.relative_to(ROOT / "common").with_suffix("")
    parts = ["exil", "common", *rel.parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_import_circle_in_common():
    """Imports between ``exil.common`` modules form no cycle — counting those inside functions and under
    ``TYPE_CHECKING`` too (deferring an import hides a circle from the interpreter, not from a reader), and the
    package ``__init__`` that importing a submodule runs (``exil.common.backbones.weights`` runs
    ``exil.common.backbones``' own imports first)."""
    files = {_module_of(p): p for p in (ROOT / "common").rglob("*.py")}
    graph = {}
    for mod, path in files.items():
        tree = ast.parse(path.read_text())
        deps = set()
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            deps |= {n for n in names if n in files and n != mod}
        for d in list(deps):  # importing a.b.c runs a.b (and a) first
            parts = d.split(".")
            deps |= {p for p in (".".join(parts[:i]) for i in range(3, len(parts))) if p in files and p != mod
                     and not mod.startswith(p + ".")}
        graph[mod] = deps
    cycles, state = [], {}

    def visit(m, stack):
        state[m] = 1
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                cycles.append(" -> ".join(stack[stack.index(d):] + [d]))
            elif d not in state:
                visit(d, stack + [d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import circles:\n" + "\n".join(cycles)


def test_one_source_of_the_version():
    from importlib.metadata import version

    import exil

    assert exil.__version__ == version("exil")
    p = subprocess.run([sys.executable, "-m", "exil", "--version"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == f"exil {exil.__version__}", p.stdout + p.stderr
    assert f"## {exil.__version__}" in (ROOT / "CHANGELOG.md").read_text()


@pytest.mark.parametrize("name", ["LICENSE", "CHANGELOG.md", "CITATION.cff"])
def test_the_project_files_exist(name):
    assert (ROOT / name).stat().st_size > 200
