"""Build a :class:`ContextSpec` from plain strings, without a store: for tests, benchmarks
and quick experiments. Production contexts come from ingestion (:mod:`rlmx.corpus`)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from rlmx.corpus.canonical import build_offset_index, canonicalize
from rlmx.corpus.index import SearchIndex

from .base import ContextDoc, ContextSpec

__all__ = ["spec_from_texts"]


def spec_from_texts(
    folder: str | Path,
    texts: Mapping[str, str],
    *,
    index: bool = True,
    kind: Literal["corpus", "text"] = "corpus",
) -> ContextSpec:
    """Store each ``name → text`` (canonicalised) under ``folder`` as ``<doc_id>.txt`` (+
    ``.idx`` when non-ASCII), index them in ``folder/index.sqlite`` when ``index``, and return
    the spec. ``doc_id`` is ``"doc_" + sha256(canonical text)[:20]``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    docs = []
    search = SearchIndex(folder / "index.sqlite") if index else None
    try:
        for name, raw in texts.items():
            text = canonicalize(raw)
            doc_id = "doc_" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]
            path = folder / f"{doc_id}.txt"
            path.write_bytes(text.encode("utf-8"))
            idx = build_offset_index(text)
            idx_path = None
            if idx is not None:
                idx_path = folder / f"{doc_id}.idx"
                idx_path.write_bytes(idx)
            if search is not None:
                search.add(doc_id, text)
            docs.append(
                ContextDoc(
                    doc_id=doc_id,
                    name=name,
                    length=len(text),
                    text_path=str(path),
                    index_path=str(idx_path) if idx_path else None,
                )
            )
    finally:
        if search is not None:
            search.close()
    return ContextSpec(docs=docs, index_path=str(folder / "index.sqlite") if index else None, kind=kind)
