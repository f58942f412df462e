"""Benchmark tasks: the record, JSONL files, context lengths and the shared data folder.

A task file holds one JSON object per line (:class:`Task`): the context itself, its
``context_sha256`` (``"sha256:" + hex`` over the UTF-8 of the context, as DESIGN.md
checksums), the question, the gold ``answer`` and how to score it (``answer_type``). A task
over a folder (``docqa``) carries ``corpus_path`` instead of the text: its context is that
folder as ``rlmx ingest`` takes it, and its ``context_sha256`` is
:func:`corpus_fingerprint` of the ingested documents (checked when the task runs).
Generators are deterministic: the same family, seed, lengths and data give byte-identical
files. Lengths are in tokens at ≈ 4 characters a token (DESIGN.md library table);
``"8k"`` is 8 × 1,024 tokens and ``"1m"`` 1,048,576 tokens, as RULER counts them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = [
    "CHARS_PER_TOKEN",
    "GENERATOR_VERSION",
    "Task",
    "context_sha256",
    "corpus_fingerprint",
    "find_data_dir",
    "format_length",
    "parse_lengths",
    "read_tasks",
    "read_text_file",
    "write_tasks",
]

CHARS_PER_TOKEN = 4
"""Characters per token when sizing contexts (DESIGN.md: ≈ 4 characters a token)."""

GENERATOR_VERSION = "rlmx-bench/1"
"""Bumped whenever a generator's output changes for the same seed."""

ANSWER_TYPES = ("substring", "numeric", "label", "comparison", "pairs", "choice", "exact")


def context_sha256(text: str) -> str:
    """``"sha256:" + hex(sha256(text.encode("utf-8")))``."""
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def corpus_fingerprint(documents: Iterable[tuple[str, str]]) -> str:
    """The ``context_sha256`` of a folder task: ``"sha256:" + hex`` over the JSON list of the
    ingested documents' ``[name, text_sha256]`` in corpus order, so it changes when a file,
    a name or a parser's output changes."""
    pairs = [[name, sha] for name, sha in documents]
    return context_sha256(json.dumps(pairs, ensure_ascii=False))


@dataclass
class Task:
    """One benchmark task.

    ``length_tokens``: the target context length in tokens (the context has about
    ``4 × length_tokens`` characters); ``answer``: the gold answer (str, or a list of
    ``[u1, u2]`` pairs for ``oolong-pairs``); ``answer_type`` picks the scorer
    (:mod:`rlmx.bench.scoring`); ``meta``: generator details (question kind, needle depth,
    options, withheld labels for the oracle...). ``corpus_path``: the folder a ``docqa``
    task's context is (``context`` is then empty; see the module doc).
    """

    id: str
    family: str
    seed: int
    index: int
    length_tokens: int
    question: str
    context: str
    answer: Any
    answer_type: str
    meta: dict[str, Any] = field(default_factory=dict)
    context_sha256: str = ""
    generator: str = GENERATOR_VERSION
    corpus_path: str = ""

    def __post_init__(self) -> None:
        if self.answer_type not in ANSWER_TYPES:
            raise ValueError(f"unknown answer_type {self.answer_type!r}; expected one of {ANSWER_TYPES}")
        if self.corpus_path and not self.context_sha256:
            raise ValueError("a folder task needs its corpus_fingerprint as context_sha256")
        if not self.context_sha256:
            self.context_sha256 = context_sha256(self.context)

    @property
    def context_chars(self) -> int:
        """Characters of the context (a folder task's: of its documents, from ``meta``)."""
        return int(self.meta.get("corpus_chars", 0)) if self.corpus_path else len(self.context)

    def to_json(self) -> str:
        data = asdict(self)
        if not self.corpus_path:  # the other families' files stay byte-identical
            del data["corpus_path"]
        return json.dumps(data, ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Task:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def write_tasks(tasks: Iterable[Task], path: str | Path) -> int:
    """Write tasks as JSONL (sorted keys, UTF-8); returns how many were written."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with p.open("w", encoding="utf-8", newline="\n") as f:
        for t in tasks:
            f.write(t.to_json() + "\n")
            n += 1
    return n


def read_tasks(path: str | Path, *, verify: bool = True) -> Iterator[Task]:
    """Yield the tasks of a JSONL file. With ``verify``, a context whose sha256 does not
    match its ``context_sha256`` raises :class:`ConfigError` (an edited or truncated file);
    a folder task's fingerprint is checked when it runs (:mod:`rlmx.bench.runner`)."""
    p = Path(path)
    try:
        fh = p.open(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read task file {p}: {e}") from e
    with fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                task = Task.from_dict(json.loads(line))
            except (json.JSONDecodeError, TypeError, ValueError) as e:
                raise ConfigError(f"{p}:{n}: not a task record ({e}); make one with `rlmx bench generate`") from e
            if verify and not task.corpus_path and context_sha256(task.context) != task.context_sha256:
                raise ConfigError(f"{p}:{n}: task {task.id}: the context does not match its context_sha256")
            yield task


_LENGTH = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([km]?)\s*$", re.I)


def parse_lengths(spec: str) -> list[int]:
    """``"8k,64k,1m"`` → ``[8192, 65536, 1048576]`` tokens (k = 1,024; m = 1,024²; a plain
    number is tokens). Raises :class:`ConfigError` on a malformed item."""
    out: list[int] = []
    for item in spec.split(","):
        if not item.strip():
            continue
        m = _LENGTH.match(item)
        if not m:
            raise ConfigError(f"bad length {item!r}: use tokens like 8k, 64k, 1m or 4096")
        mult = {"": 1, "k": 1024, "m": 1024 * 1024}[m.group(2).lower()]
        value = int(float(m.group(1)) * mult)
        if value < 256:
            raise ConfigError(f"length {item!r} is too short: at least 256 tokens")
        out.append(value)
    if not out:
        raise ConfigError("no lengths given: use e.g. --lengths 8k,64k")
    return out


def format_length(tokens: int) -> str:
    """8192 → ``"8k"``, 1048576 → ``"1m"``, 5000 → ``"5000"``."""
    if tokens % (1024 * 1024) == 0:
        return f"{tokens // (1024 * 1024)}m"
    if tokens % 1024 == 0:
        return f"{tokens // 1024}k"
    return str(tokens)


def find_data_dir(explicit: str | Path | None = None) -> Path:
    """The shared data folder: ``explicit``, else ``$RLMX_BENCH_DATA``, else
    ``../shared/data`` beside the working directory or beside the rlmx checkout.
    Raises :class:`ConfigError` naming the places tried."""
    tried: list[Path] = []
    candidates: list[Path] = []
    if explicit is not None:
        candidates.append(Path(explicit))
    elif os.environ.get("RLMX_BENCH_DATA"):
        candidates.append(Path(os.environ["RLMX_BENCH_DATA"]))
    else:
        candidates.append(Path.cwd().parent / "shared" / "data")
        candidates.append(Path(__file__).resolve().parents[4] / "shared" / "data")
    for c in candidates:
        c = c.expanduser()
        tried.append(c)
        if c.is_dir():
            return c
    where = ", ".join(map(str, tried))
    raise ConfigError(f"shared data folder not found (tried {where}): pass --data DIR or set RLMX_BENCH_DATA")


def read_text_file(path: Path) -> str:
    """A data file as canonical text (UTF-8, else ISO-8859-1; NFC; ``\\n`` newlines)."""
    from ..corpus.canonical import canonicalize

    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return canonicalize(text)
