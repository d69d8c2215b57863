"""No import cycles in ``harness``: statically (module- and function-level imports) and by importing each module
first in a fresh interpreter."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _modules(root: Path, package: str) -> dict[str, Path]:
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        name = ".".join(path.relative_to(root).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def _imports(path: Path, package: str, modules: dict[str, Path]) -> set[str]:
    """Modules of ``package`` that ``path`` imports, at any depth, except under ``if TYPE_CHECKING:``."""
    found: set[str] = set()
    for node in _walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith(package):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in modules else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith(package))
    return {m for m in found if m in modules}


def _walk(node: ast.AST):
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            continue
        yield child
        yield from _walk(child)


def import_cycles(root: Path, package: str) -> list[list[str]]:
    """Strongly connected groups of modules importing each other (a submodule importing its own package's
    ``__init__`` is no cycle: the package is the submodule's parent)."""
    modules = _modules(root, package)
    graph = {m: {d for d in _imports(p, package, modules) if not m.startswith(d + ".")} for m, p in modules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


_IMPORT_EACH = textwrap.dedent("""
    import importlib, sys, traceback
    failed = []
    for name in sys.argv[1:]:
        for loaded in [m for m in sys.modules if m == '{pkg}' or m.startswith('{pkg}.')]:
            del sys.modules[loaded]
        try:
            importlib.import_module(name)
        except Exception as exc:
            failed.append(f"{{name}}: {{type(exc).__name__}}: {{exc}}")
    print("\\n".join(failed))
""")


def import_each_first(root: Path, package: str) -> list[str]:
    """Import every module of ``package`` in one fresh interpreter, each first (the package's modules are
    dropped from ``sys.modules`` before each); the failures."""
    names = [n for n in _modules(root, package) if not n.rsplit(".", 1)[-1].startswith("__")]
    proc = subprocess.run([sys.executable, "-c", _IMPORT_EACH.format(pkg=package), *names], cwd=root,
                          capture_output=True, text=True, timeout=900, env={**os.environ, "PYTHONPATH": str(root)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [line for line in proc.stdout.splitlines() if line.strip()]


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    """A package whose two modules import each other at module level (the planted cycle)."""
    pkg = tmp_path / "cyc"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from cyc.b import B\nA = 1\n")
    (pkg / "b.py").write_text("from cyc.a import A\nB = 2\n")
    (pkg / "c.py").write_text("def f():\n    from cyc.a import A\n    return A\n")
    return tmp_path


def test_static_cycle_finder_catches_a_planted_cycle(planted: Path):
    assert import_cycles(planted, "cyc") == [["cyc.a", "cyc.b"]]


def test_import_each_first_catches_a_planted_cycle(planted: Path):
    failures = import_each_first(planted, "cyc")
    assert any(f.startswith("cyc.a: ImportError") and "partially initialized" in f for f in failures), failures


def test_harness_has_no_import_cycle():
    assert import_cycles(ROOT, "harness") == []


@pytest.mark.slow
def test_every_harness_module_imports_first_in_a_fresh_interpreter():
    assert import_each_first(ROOT, "harness") == []


def test_heavy_libraries_load_only_when_used():
    """`harness` and its CLI import no deepdiff (it pulls pandas, ~1 s), vLLM, transformers, torch or hypothesis
    (~0.13 s): the checks import deepdiff when a tool or reasoning comparison runs, the parsers import vLLM when one
    is built, hypothesis comes with `harness.strategies` or a generator option error."""
    code = ("import sys, harness, harness.cli, harness.checks; "
            "import harness.generate, harness.cli.check; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'deepdiff', 'pandas', 'vllm', 'torch', "
            "'transformers', 'hypothesis'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == "[]", out.stdout
