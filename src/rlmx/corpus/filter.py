"""Which files of a folder walk or a glob are documents: the one list of skip rules.

A documentation folder holds more than its pages: scripts, stylesheets, source maps,
images, fonts, search indexes (``searchindex.js``), lock files and Sphinx's ``_sources/``
copies of every page. Ingested, they crowd the corpus and BM25 ranks them first, so
:func:`select` skips them by default, each with the reason of its rule in
:data:`SKIP_RULES`. Only files found by walking a folder or matching a glob are filtered:
a file named explicitly by its path is always ingested.

Overrides (``--include GLOB`` / ``--exclude GLOB``, the session API's ``include`` /
``exclude``): a file matching an ``exclude`` pattern is skipped (reason
:data:`EXCLUDED`); else a file matching an ``include`` pattern is kept even when a rule
would skip it; else the rules decide. A pattern with no ``/`` matches any one component
of the file's display name (``*.js``, ``_sources``, ``searchindex.js``); a pattern with
``/`` matches the whole display name (``fnmatch``, where ``*`` also matches ``/``; a
leading ``**/`` may match nothing: ``**/x.js`` matches ``x.js``).

:func:`dedupe` keeps exact duplicates (the same canonical text) once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pydantic loads on first use
    from rlmx.corpus.records import DocumentRecord, DuplicateFile

__all__ = ["EXCLUDED", "SKIP_RULES", "SkipRule", "dedupe", "match_any", "select", "skip_reason"]

EXCLUDED = "excluded by a pattern"


@dataclass(frozen=True)
class SkipRule:
    """Files to skip by default: ``names`` are patterns matched against the file name (the
    last component, case-insensitive), ``folders`` against every folder of the display
    name; ``reason`` is what the ingestion summary reports."""

    reason: str
    names: tuple[str, ...] = ()
    folders: tuple[str, ...] = ()


SKIP_RULES: tuple[SkipRule, ...] = (
    # the most specific first: searchindex.js is a search index, not a script
    SkipRule(
        "search index",
        names=("searchindex.js", "searchindex.json", "search_index.json", "search-index.json", "objects.inv"),
    ),
    SkipRule(
        "lock file",
        names=(
            "package-lock.json",
            "npm-shrinkwrap.json",
            "yarn.lock",
            "pnpm-lock.yaml",
            "bun.lockb",
            "*.lock",
        ),
    ),
    SkipRule("Sphinx page source copy", folders=("_sources",)),
    SkipRule("source map", names=("*.map",)),
    SkipRule("script", names=("*.js", "*.mjs", "*.cjs")),
    SkipRule("stylesheet", names=("*.css", "*.scss", "*.sass", "*.less")),
    SkipRule(
        "image",
        names=("*.png", "*.jpg", "*.jpeg", "*.gif", "*.svg", "*.ico", "*.webp", "*.bmp", "*.tif", "*.tiff", "*.avif"),
    ),
    SkipRule("font", names=("*.woff", "*.woff2", "*.ttf", "*.otf", "*.eot")),
)
"""The default skip rules, first match wins (see the module doc)."""


def _matches(pattern: str, name: str) -> bool:
    if "/" not in pattern:
        return any(fnmatchcase(part, pattern) for part in name.split("/"))
    if fnmatchcase(name, pattern):
        return True
    return pattern.startswith("**/") and fnmatchcase(name, pattern[3:])


def match_any(patterns: Iterable[str], name: str) -> bool:
    """Whether the display ``name`` (``/``-separated) matches one of ``patterns``."""
    return any(_matches(p, name) for p in patterns)


def skip_reason(name: str) -> str | None:
    """The reason of the first rule of :data:`SKIP_RULES` that skips ``name``, else None."""
    parts = name.split("/")
    base = parts[-1].lower()
    for rule in SKIP_RULES:
        if any(fnmatchcase(base, p) for p in rule.names):
            return rule.reason
        if rule.folders and any(f in rule.folders for f in parts[:-1]):
            return rule.reason
    return None


def select(name: str, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> str | None:
    """Why the walked or globbed file ``name`` is skipped (:data:`EXCLUDED` or a rule's
    reason), or None to ingest it (see the module doc for the order)."""
    if exclude and match_any(exclude, name):
        return EXCLUDED
    if include and match_any(include, name):
        return None
    return skip_reason(name)


def dedupe(docs: Sequence[DocumentRecord]) -> tuple[list[DocumentRecord], list[DuplicateFile]]:
    """``docs`` (ordered by name) with each canonical text (``text_sha256``) once: the first
    by name is kept, with the names of the others added to its ``meta["aliases"]``; the
    others are returned as :class:`~rlmx.corpus.records.DuplicateFile`."""
    from rlmx.corpus.records import DuplicateFile

    first: dict[str, int] = {}
    kept: list[DocumentRecord] = []
    dups: list[DuplicateFile] = []
    aliases: dict[int, list[str]] = {}
    for d in docs:
        i = first.get(d.text_sha256)
        if i is None:
            first[d.text_sha256] = len(kept)
            kept.append(d)
            continue
        aliases.setdefault(i, []).append(d.name)
        dups.append(
            DuplicateFile(source_path=d.source_path, name=d.name, kept_name=kept[i].name, doc_id=kept[i].doc_id)
        )
    for i, names in aliases.items():
        kept[i] = kept[i].model_copy(update={"meta": {**kept[i].meta, "aliases": names}})
    return kept, dups
