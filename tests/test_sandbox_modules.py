"""The sandbox package's shape (issue 9 item 16): every module imports on its own in a fresh
interpreter (a cycle would fail on a partially initialised module), declares ``__all__``,
stays small, and no two sandbox modules import each other, even lazily inside a function."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "src" / "rlmx" / "sandbox"
MODULES = sorted(p.stem for p in PKG.glob("*.py") if p.stem != "__init__")
MAX_LINES = 420
# local.py and what was split out of it (issue 9 item 16), with the zygote it used to cycle with;
# then context.py (-> docview), worker.py (-> channel) and _scan.py (-> _prefilter)
SPLIT = [
    *["environment", "launch", "local", "outputlog", "protocol", "restore", "steps", "workspace", "zygote"],
    *["_prefilter", "_scan", "channel", "context", "docview", "worker"],
]


def _sandbox_imports(name: str) -> set[str]:
    """The sandbox modules that module ``name`` imports anywhere (top level or in a function)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse((PKG / f"{name}.py").read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                found.add(node.module.split(".")[0])
            elif node.level == 1:
                found |= {a.name for a in node.names}
            elif node.module and node.module.startswith("rlmx.sandbox."):
                found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[2] for a in node.names if a.name.startswith("rlmx.sandbox.")}
    return found & set(MODULES)


def _cycle() -> list[str] | None:
    """A cycle of sandbox modules importing each other, or None."""
    graph = {m: _sandbox_imports(m) for m in MODULES}
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return [*path[path.index(n) :], n]
            if n not in state and (found := visit(n)):
                return found
        path.pop()
        state[m] = 2
        return None

    for m in MODULES:
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_sandbox_module_imports_another_that_imports_it_back() -> None:
    assert _cycle() is None, " -> ".join(_cycle() or [])


def test_the_cycle_check_sees_lazy_imports() -> None:
    assert "zygote" in _sandbox_imports("launch")  # imported inside launch_zygote
    assert "environment" in _sandbox_imports("zygote")


@pytest.mark.parametrize("name", MODULES)
def test_each_module_imports_alone_and_declares_all(name: str) -> None:
    code = (
        f"import rlmx.sandbox.{name} as m\n"
        "assert isinstance(m.__all__, list) and m.__all__, 'no __all__'\n"
        "missing = [n for n in m.__all__ if not hasattr(m, n)]\n"
        "assert not missing, missing\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("name", SPLIT)
def test_the_runner_modules_stay_small(name: str) -> None:
    lines = len((PKG / f"{name}.py").read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"sandbox/{name}.py has {lines} lines: split it (at most {MAX_LINES})"


def test_the_public_names_stay_where_they_were() -> None:
    code = (
        "import rlmx.sandbox as s, rlmx.sandbox.local as local, rlmx.sandbox.launch as launch\n"
        "import rlmx.sandbox.environment as env, rlmx.sandbox.protocol as protocol\n"
        "assert s.LocalREPL is local.LocalREPL and s.make_repl and s.BwrapREPL and s.Snapshot\n"
        "assert local.child_env is env.child_env and local.Launched is launch.Launched\n"
        "assert local._Violation is protocol.Violation\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
