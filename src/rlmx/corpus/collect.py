"""Expanding ingestion arguments (files, folders, glob patterns) into named files.

Display names: the file name for a file given directly; the path relative to the folder
for a folder; the path relative to the pattern's fixed prefix for a glob (``docs/**/*.md``
→ ``guide/intro.md``). Names use ``/`` and are made unique within one call. Hidden entries
(``.name``) and the folders ``__pycache__``, ``.git`` and ``node_modules`` are skipped.

A folder's walk stays inside the folder: symbolic links to folders are not followed, and an
entry that is not a regular file (a FIFO, socket or device such as ``/dev/zero``), a broken
link, or a symbolic link whose target (resolved) lies outside the folder's real path is
skipped and reported as a problem ``(path, reason)`` — so a folder under the service's
``RLMX_ALLOWED_PATHS`` cannot be used to read files outside it, and ingestion never blocks
on a FIFO or reads a device forever. A file named directly (or matched by a glob) is taken
as given.

Files found by a folder walk or a glob then pass :func:`rlmx.corpus.filter.select`
(scripts, stylesheets, images, search indexes... are skipped by default; ``include`` /
``exclude`` patterns override); a file named directly is never filtered. A glob whose
own pattern names a skipped kind (``docs/*.js``, ``html/_sources/*.txt``) asks for those
files: that rule does not apply to its matches.
"""

from __future__ import annotations

import glob
import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from rlmx.corpus.filter import select, skip_reason

__all__ = ["SKIP_DIRS", "Problem", "SourceFile", "collect"]

Problem = tuple[str, str]  # (argument as given, or a skipped path in a folder; the reason)
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


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _walk(top: Path, problems: list[Problem]) -> Iterator[Path]:
    """The regular files under ``top`` (see the module doc); skipped entries are appended to
    ``problems``. ``os.walk`` does not descend into linked folders, so every folder visited
    lies under ``top``'s real path and only an entry that is itself a link can lead out."""
    real_top = os.path.realpath(top)
    for dirpath, dirnames, filenames in os.walk(top):
        kept = []
        for d in sorted(dirnames):
            if _skipped(d):
                continue
            path = os.path.join(dirpath, d)
            if os.path.islink(path):
                if not _inside(os.path.realpath(path), real_top):
                    problems.append((path, "symbolic link to a path outside the folder: skipped"))
                continue  # a link to a folder inside is walked through its real path
            kept.append(d)
        dirnames[:] = kept
        for fn in sorted(filenames):
            if _skipped(fn):
                continue
            path = os.path.join(dirpath, fn)
            why = _not_a_file_inside(path, real_top)
            if why is None:
                yield Path(path)
            else:
                problems.append((path, why))


def _not_a_file_inside(path: str, real_top: str) -> str | None:
    """None when ``path`` is a regular file inside ``real_top`` (after following a link),
    else why it is skipped."""
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            if not _inside(os.path.realpath(path), real_top):
                return "symbolic link to a path outside the folder: skipped"
            st = os.stat(path)
    except FileNotFoundError:
        return "broken symbolic link: skipped"
    except OSError as e:
        return f"cannot read the file: {e.strerror or e}"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file (a FIFO, socket or device): skipped"
    return None


def _glob_base(pattern: str) -> Path:
    parts = Path(pattern).parts
    fixed = []
    for p in parts:
        if _MAGIC.search(p):
            break
        fixed.append(p)
    return Path(*fixed) if fixed else Path(".")


_Found = list[tuple[Path, str, Path, str | None]]  # (path, name, root, rule waived | "explicit")
_EXPLICIT = "explicit"


def _waived(pattern: str) -> str | None:
    """The skip rule a glob's own pattern names (``*.js``: "script"), whose files it asks for."""
    parts = Path(pattern).parts
    fixed = len(_glob_base(pattern).parts) if _MAGIC.search(pattern) else 0
    rest = [p for p in parts[fixed:] if p != "**"] or list(parts[-1:])
    if not rest:
        return None
    return skip_reason("/".join(rest)) or skip_reason("/".join(rest) + "/-")  # or a folder named


def _expand(arg: str | Path) -> tuple[_Found, list[Problem]]:
    path = Path(arg).expanduser()
    problems: list[Problem] = []
    if path.is_file():
        return [(path, path.name, path.parent, _EXPLICIT)], problems
    if path.is_dir():
        files: _Found = [(f, f.relative_to(path).as_posix(), path, None) for f in _walk(path, problems)]
        if not files and not problems:
            problems.append(
                (
                    str(arg),
                    "folder has no files (hidden files, __pycache__, .git and node_modules are skipped)",
                )
            )
        return files, problems
    pattern = os.path.expanduser(str(arg))
    if _MAGIC.search(pattern):
        base = _glob_base(pattern)
        waived = _waived(pattern)
        out: _Found = []
        for hit in sorted(glob.glob(pattern, recursive=True)):
            p = Path(hit)
            rel = p.relative_to(base) if p.is_relative_to(base) else Path(p.name)
            if any(_skipped(part) for part in rel.parts):
                continue
            if p.is_file():
                out.append((p, rel.as_posix(), base, waived))
            elif p.is_dir():
                out.extend((f, (rel / f.relative_to(p)).as_posix(), base, None) for f in _walk(p, problems))
        if not out and not problems:
            problems.append((str(arg), "no files match the glob pattern"))
        return out, problems
    if path.exists():
        return [], [(str(arg), "not a regular file or folder")]
    return [], [(str(arg), "no such file or folder (check the path and the current folder)")]


def collect(
    paths: Sequence[str | Path],
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> tuple[list[SourceFile], list[Problem], list[Problem]]:
    """Expand ``paths`` into files with unique display names (first occurrence of a file
    wins), ``(argument or path, reason)`` problems: arguments that yield no file, and
    entries of a folder that were skipped (links leading out of it, FIFOs, devices; see the
    module doc), and the ``(path, reason)`` of walked or globbed files that are not
    documents (:func:`rlmx.corpus.filter.select`). Never raises for bad paths."""
    files: list[SourceFile] = []
    failures: list[Problem] = []
    skipped: list[Problem] = []
    seen_paths: set[Path] = set()
    names: set[str] = set()
    for arg in paths:
        found, problems = _expand(arg)
        failures.extend(problems)
        for path, name, root, waived in found:
            key = Path(os.path.abspath(path))  # no symlink resolution: no system calls
            if key in seen_paths:
                continue
            seen_paths.add(key)
            if waived != _EXPLICIT:
                why = select(name, include, exclude)
                if why is not None and why != waived:
                    skipped.append((str(key), why))
                    continue
            if name in names:
                name = f"{Path(os.path.abspath(root)).name or 'root'}/{name}"
            unique, k = name, 2
            while unique in names:
                unique, k = f"{name}~{k}", k + 1
            names.add(unique)
            files.append(SourceFile(path=key, name=unique, root=root))
    return files, failures, skipped
