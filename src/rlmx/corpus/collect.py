"""Expanding ingestion arguments (files, folders, glob patterns) into named files.

Display names: the file name for a file given directly; the path relative to the folder
for a folder; the path relative to the pattern's fixed prefix for a glob (``docs/**/*.md``
→ ``guide/intro.md``). Names use ``/`` and are made unique within one call. Hidden entries
(``.name``) and the folders ``__pycache__``, ``.git`` and ``node_modules`` are skipped.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SKIP_DIRS", "Problem", "SourceFile", "collect"]

Problem = tuple[str, str]  # (argument as given, reason it yields no file)
SKIP_DIRS = frozenset({"__pycache__", ".git", "node_modules"})
_MAGIC = re.compile(r"[*?[]")


@dataclass(frozen=True)
class SourceFile:
    """A file to ingest: its absolute ``path`` and display ``name`` (``root``: the folder
    the name is relative to, used to disambiguate equal names)."""

    path: Path
    name: str
    root: Path


def _skipped(name: str) -> bool:
    return name.startswith(".") or name in SKIP_DIRS


def _walk(top: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if not _skipped(d))
        for fn in sorted(filenames):
            if not _skipped(fn):
                yield Path(dirpath) / fn


def _glob_base(pattern: str) -> Path:
    parts = Path(pattern).parts
    fixed = []
    for p in parts:
        if _MAGIC.search(p):
            break
        fixed.append(p)
    return Path(*fixed) if fixed else Path(".")


def _expand(arg: str | Path) -> tuple[list[tuple[Path, str, Path]], Problem | None]:
    path = Path(arg).expanduser()
    if path.is_file():
        return [(path, path.name, path.parent)], None
    if path.is_dir():
        files = [(f, f.relative_to(path).as_posix(), path) for f in _walk(path)]
        if not files:
            return [], (
                str(arg),
                "folder has no files (hidden files, __pycache__, .git and node_modules are skipped)",
            )
        return files, None
    pattern = os.path.expanduser(str(arg))
    if _MAGIC.search(pattern):
        base = _glob_base(pattern)
        out: list[tuple[Path, str, Path]] = []
        for hit in sorted(glob.glob(pattern, recursive=True)):
            p = Path(hit)
            rel = p.relative_to(base) if p.is_relative_to(base) else Path(p.name)
            if any(_skipped(part) for part in rel.parts):
                continue
            if p.is_file():
                out.append((p, rel.as_posix(), base))
            elif p.is_dir():
                out.extend((f, (rel / f.relative_to(p)).as_posix(), base) for f in _walk(p))
        if not out:
            return [], (str(arg), "no files match the glob pattern")
        return out, None
    if path.exists():
        return [], (str(arg), "not a regular file or folder")
    return [], (str(arg), "no such file or folder (check the path and the current folder)")


def collect(paths: Sequence[str | Path]) -> tuple[list[SourceFile], list[Problem]]:
    """Expand ``paths`` into files with unique display names (first occurrence of a file
    wins) and ``(argument, reason)`` problems for arguments that yield no file. Never
    raises for bad paths."""
    files: list[SourceFile] = []
    failures: list[Problem] = []
    seen_paths: set[Path] = set()
    names: set[str] = set()
    for arg in paths:
        found, failure = _expand(arg)
        if failure is not None:
            failures.append(failure)
        for path, name, root in found:
            key = Path(os.path.abspath(path))  # no symlink resolution: no system calls
            if key in seen_paths:
                continue
            seen_paths.add(key)
            if name in names:
                name = f"{Path(os.path.abspath(root)).name or 'root'}/{name}"
            unique, k = name, 2
            while unique in names:
                unique, k = f"{name}~{k}", k + 1
            names.add(unique)
            files.append(SourceFile(path=key, name=unique, root=root))
    return files, failures
