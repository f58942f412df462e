"""``docqa``: questions over real documentation folders, with ground truth computed from the
files as rlmx ingests them.

A source is a folder: the SQLite documentation (Debian ``sqlite3-doc``, unpacked by
``scripts/fetch-docqa.sh``; :mod:`.docqa_sqlite`) or Python source such as a package of the
standard library (:mod:`.docqa_python`). :func:`generate_docqa` ingests each folder with
rlmx's normal folder ingestion (default skip rules, duplicates kept once) into the store,
reads the documents' canonical texts back, extracts every question their structure
supports, and draws ``n`` per folder with the seed: task ``i`` asks a question of kind
``KINDS[i % len(KINDS)]`` of the folder's extractor (the next kind when one is used up), a
mix of retrieval questions and a few aggregations (counts across a list or across files).

Each task's context is the folder (``Task.corpus_path``, an absolute path; ``context`` is
empty) and its ``context_sha256`` the :func:`~rlmx.bench.tasks.corpus_fingerprint` of the
ingested documents. ``answer`` is the canonical answer, ``answer_type`` ``"exact"``;
``meta``: ``kind``, ``accepted`` (every form scored right), ``evidence`` (``{"doc",
"doc_id", "start", "end", "text"}``: the document and the text proving the answer, offsets
in code points of its canonical text), ``aggregation``, ``source`` (``sqlite-doc`` |
``python``), ``corpus_id``, ``documents``, ``corpus_chars``, and ``python`` (the version)
for Python folders. ``length_tokens`` is the corpus's characters / 4.

The same seed over the same files (and parser versions) gives byte-identical task files; a
copy of the folder elsewhere gets the same questions (only ``corpus_path`` differs): the
draw is seeded by the seed and the folder's kind, not its path.
"""

from __future__ import annotations

import random
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError
from . import docqa_python, docqa_sqlite
from .docqa_base import Doc, Question
from .tasks import CHARS_PER_TOKEN, Task, corpus_fingerprint

if TYPE_CHECKING:
    from ..corpus.records import CorpusRecord
    from ..store import Store

__all__ = ["FETCH_HINT", "generate_docqa", "load_docs"]

FETCH_HINT = "sh scripts/fetch-docqa.sh DIR (unpacks Debian's sqlite3-doc into DIR/sqlite3-doc)"


def load_docs(corpus: CorpusRecord, store: Store) -> list[Doc]:
    """The canonical texts of an ingested corpus's documents, in corpus order."""
    return [Doc(d.name, d.doc_id, store.blobs.get(d.text_key).decode("utf-8")) for d in corpus.documents]


def _label(root: Path, used: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", root.name).strip("-") or "folder"
    label, k = base, 2
    while label in used:
        label, k = f"{base}{k}", k + 1
    used.add(label)
    return label


def _draw(qs: list[Question], kinds: Sequence[str], n: int, rng: random.Random, where: Path) -> list[Question]:
    pools: dict[str, list[Question]] = {}
    for q in qs:
        pools.setdefault(q.kind, []).append(q)
    for pool in pools.values():
        rng.shuffle(pool)
    order = list(dict.fromkeys(kinds))
    out: list[Question] = []
    for i in range(n):
        want = kinds[i % len(kinds)]
        start = order.index(want)
        for j in range(len(order)):
            left = pools.get(order[(start + j) % len(order)])
            if left:
                out.append(left.pop())
                break
        else:
            raise ConfigError(f"{where}: only {len(out)} docqa questions can be made from this folder; lower --n")
    return out


def generate_docqa(n: int, seed: int, sources: Sequence[str | Path], store: Store) -> list[Task]:
    """``n`` tasks per folder of ``sources``, ingesting each into ``store`` (see the module
    doc). Raises :class:`ConfigError` for a missing folder, a folder no extractor knows, or
    one with fewer than ``n`` questions; :class:`~rlmx.errors.IngestError` when nothing in
    a folder could be ingested."""
    from ..corpus import ingest

    if not sources:
        raise ConfigError(f"docqa needs --source DIR (a documentation folder); get SQLite's with {FETCH_HINT}")
    tasks: list[Task] = []
    used: set[str] = set()
    for src in sources:
        root = Path(src).expanduser().resolve()
        if not root.is_dir():
            raise ConfigError(f"docqa source {src} is not a folder; get the SQLite documentation with {FETCH_HINT}")
        corpus = ingest([root], store)
        docs = load_docs(corpus, store)
        meta: dict[str, object] = {}
        kinds: Sequence[str]
        if docqa_sqlite.detect(docs):
            kind, kinds, qs = "sqlite-doc", docqa_sqlite.KINDS, docqa_sqlite.questions(docs)
        elif docqa_python.detect(docs):
            package = root.name if any(d.name == "__init__.py" for d in docs) else None
            kind, kinds, qs = "python", docqa_python.KINDS, docqa_python.questions(docs, package)
            v = sys.version_info
            meta["python"] = f"{v.major}.{v.minor}.{v.micro}"
        else:
            raise ConfigError(
                f"{root}: docqa knows the SQLite documentation (sqlite3-doc: {FETCH_HINT}) and Python source "
                "folders; this folder is neither"
            )
        rng = random.Random(f"docqa:{seed}:{kind}")
        fingerprint = corpus_fingerprint((d.name, d.text_sha256) for d in corpus.documents)
        chars = sum(d.length_chars for d in corpus.documents)
        label = _label(root, used)
        for i, q in enumerate(_draw(qs, kinds, n, rng, root)):
            tasks.append(
                Task(
                    id=f"docqa-{label}-s{seed}-{i:04d}",
                    family="docqa",
                    seed=seed,
                    index=i,
                    length_tokens=max(1, chars // CHARS_PER_TOKEN),
                    question=q.question,
                    context="",
                    answer=q.answer,
                    answer_type="exact",
                    meta={
                        "kind": q.kind,
                        "accepted": q.accepted,
                        "evidence": q.evidence,
                        "aggregation": q.aggregation,
                        "params": q.params,
                        "source": kind,
                        "corpus_id": corpus.corpus_id,
                        "documents": len(corpus.documents),
                        "corpus_chars": chars,
                        **meta,
                    },
                    context_sha256=fingerprint,
                    corpus_path=str(root),
                )
            )
    return tasks
