"""The ingestion summary printed by ``rlmx ingest`` and ``rlmx ask`` (on stderr).

One line, then one line per kept document that has aliases (at most ``shown``)::

    ingested 12 documents; skipped 31 (script 9, stylesheet 6, Sphinx page source copy 12, ...);
    2 duplicates; failed 1 (unsupported file type 1)
      duplicate text: index.html = copy.html, again.html
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rlmx.corpus.records import CorpusRecord

__all__ = ["summary_lines"]


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{reason} {n}" for reason, n in counts.items())


def summary_lines(corpus: CorpusRecord, shown: int = 5) -> list[str]:
    """The summary of what ingesting ``corpus`` kept, skipped (by reason), found duplicate
    and failed on (by reason); see the module doc."""
    s = corpus.summary()
    skipped, failed = s["skipped"], s["failed"]
    parts = [f"ingested {s['kept']} documents"]
    parts.append(f"skipped {sum(skipped.values())} ({_counts(skipped)})" if skipped else "skipped 0")
    parts.append(f"{s['duplicates']} duplicates")
    parts.append(f"failed {sum(failed.values())} ({_counts(failed)})" if failed else "failed 0")
    lines = ["; ".join(parts)]
    aliases: dict[str, list[str]] = s["aliases"]
    for kept, names in list(aliases.items())[:shown]:
        lines.append(f"  duplicate text: {kept} = {', '.join(names)}")
    if len(aliases) > shown:
        lines.append(f"  (+{len(aliases) - shown} more documents with duplicates)")
    return lines
