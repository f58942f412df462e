"""Layering rules (issue 8 item 9): ``rlmx.corpus`` and the LM wrappers do not import the
store — they depend on small protocols (:mod:`rlmx.corpus.ports`, :mod:`rlmx.lm.cache`)
that the store satisfies structurally — and the packages import cleanly in any order."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "rlmx"
STORE_FREE = [*sorted((SRC / "corpus").rglob("*.py")), SRC / "lm" / "wrappers.py", SRC / "lm" / "cache.py"]


def _imported(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (top level, functions, TYPE_CHECKING)."""
    package = ".".join(path.relative_to(SRC.parent).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rsplit(".", 1)[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            names.add(mod)
            names |= {f"{mod}.{a.name}" for a in node.names}
    return names


@pytest.mark.parametrize("path", STORE_FREE, ids=lambda p: str(p.relative_to(SRC)))
def test_corpus_and_lm_wrappers_do_not_import_the_store(path: Path) -> None:
    bad = sorted(n for n in _imported(path) if n == "rlmx.store" or n.startswith("rlmx.store."))
    assert not bad, f"{path.relative_to(SRC)} imports {bad}: depend on rlmx.corpus.ports / rlmx.lm.cache instead"


def test_the_rule_sees_relative_imports() -> None:
    assert "rlmx.corpus.index" in _imported(SRC / "engine" / "context_search.py")  # from ..corpus.index import
    assert "rlmx.store" in _imported(SRC / "api.py")  # from .store import Store


@pytest.mark.parametrize(
    "first",
    ["rlmx.corpus.records", "rlmx.store.base", "rlmx.store", "rlmx.corpus", "rlmx.lm.wrappers", "rlmx.corpus.ingest"],
)
def test_no_import_cycles(first: str) -> None:
    """Imported first in a fresh interpreter, each module loads (a cycle would fail on a
    partially initialised module), and the store's re-exports are the corpus records."""
    code = (
        f"import {first}\n"
        "import rlmx.store.base as b, rlmx.corpus.records as r, rlmx.corpus, rlmx.lm.wrappers\n"
        "assert b.DocumentRecord is r.DocumentRecord and b.CorpusRecord is r.CorpusRecord\n"
        "assert b.FailedDocument is r.FailedDocument and b.utcnow is r.utcnow\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_store_satisfies_the_corpus_ports(tmp_path: Path) -> None:
    from rlmx.corpus.ports import BlobAccess, CorpusStore, DocumentCatalog
    from rlmx.store import open_store

    store = open_store(tmp_path / "home")
    try:
        for proto, obj in ((CorpusStore, store), (DocumentCatalog, store.meta), (BlobAccess, store.blobs)):
            members = [m for m in vars(proto) if not m.startswith("_")]
            assert members and all(callable(getattr(obj, m, None)) or hasattr(obj, m) for m in members), proto
    finally:
        store.close()
