"""Run benchmark tasks with several methods side by side and write one result per line.

Models: ``model`` / ``sub_model`` are specs as for ``rlmx ask`` (resolved the same way:
``--model``, ``RLMX_MODEL``, ``openai:gpt-5`` with ``OPENAI_API_KEY``, else ``baseline``).
With the ``baseline`` root the run is offline (:mod:`rlmx.bench.offline`): the root is the
family's scripted policy, ``base`` / ``retrieval`` use the offline reader, and the sub-LM
is the oracle labeller for ``oolong`` / ``oolong-pairs`` (``sub_model="oracle"`` asks for it
with any root) and the ``baseline`` extractive sub-LM otherwise; ``docqa``'s offline root is
its evidence oracle (:mod:`rlmx.bench.docqa_oracle`).

A folder task (``docqa``) is ingested once per run (rlmx's folder ingestion, its default
skip rules) and fails with an error row when the ingested documents no longer match its
``context_sha256``; ``base`` gets the documents' texts one after another, each under a
``### File: <name>`` line.

A result row (JSON): ``task_id, family, length_tokens, context_chars, seed, kind, method,
root_model, sub_model, status, score, answer, gold, input_tokens, output_tokens, cost_usd``
(USD, None when a price is unknown), ``cached_calls, turns, sub_calls, wall_s`` (the
method's wall seconds, ingestion excluded), ``ingest_s, truncated, execution_id, error,
rlmx_version, generator``; for tasks with evidence (``docqa``) also ``citations`` (the
answer's SpanRefs, as ``rlmx ask --json`` gives them: ``rlmx verify`` takes a row) and
``evidence_cited`` (1.0 / 0.0, :func:`rlmx.bench.scoring.evidence_cited`; None for ``base``
and ``retrieval``, which do not cite).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..errors import ConfigError, RlmxError
from ..lm.base import LMClient
from ..lm.registry import make_client, resolve_models
from ..types import Budgets, Status, Usage
from .docqa_oracle import DocQAOracleLM
from .methods import METHODS, method_budgets, run_direct, window_tokens
from .offline import OfflineReaderLM, OracleLabelLM, offline_root
from .scoring import evidence_cited, score
from .tasks import Task, corpus_fingerprint

if TYPE_CHECKING:
    from ..api import RLM
    from ..corpus.records import CorpusRecord

__all__ = ["BenchRunner", "RunConfig", "parse_methods"]

_ORACLE_FAMILIES = ("oolong", "oolong-pairs")


def parse_methods(spec: str) -> list[str]:
    """``"base,rlm-d1"`` → ``["base", "rlm-d1"]``; raises ValueError for an unknown one."""
    out = [m.strip() for m in spec.split(",") if m.strip()]
    bad = [m for m in out if m not in METHODS]
    if bad or not out:
        raise ValueError(f"unknown method(s) {', '.join(bad) or '(none)'}; choose from {', '.join(METHODS)}")
    return list(dict.fromkeys(out))


@dataclass
class _Outcome:
    """What one run produced (FAILED with no usage until :meth:`set`)."""

    root_spec: str
    sub_model: str
    execution_id: str | None = None
    status: Status = Status.FAILED
    text: str = ""
    usage: Usage = field(default_factory=Usage)
    error: str | None = None
    wall_s: float = 0.0
    ingest_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def set(self, execution_id: str, status: Status, text: str, usage: Usage, error: str | None) -> None:
        self.execution_id, self.status, self.text, self.usage, self.error = execution_id, status, text, usage, error


@dataclass
class RunConfig:
    """Knobs of a run. ``window_tokens``: override of the base method's window;
    ``top_k``: passages for ``retrieval``; ``jobs``: tasks run at once."""

    methods: list[str] = field(default_factory=lambda: ["base", "retrieval", "rlm-d1"])
    model: str | None = None
    sub_model: str | None = None
    budgets: Budgets = field(default_factory=Budgets)
    home: Path | None = None
    cache: bool = True
    window_tokens: int | None = None
    top_k: int = 10
    max_output_tokens: int | None = None
    max_concurrency: int | None = None
    jobs: int = 1


class BenchRunner:
    """Runs tasks × methods (see the module doc). ``on_result(row)`` is called per row."""

    def __init__(self, config: RunConfig, on_result: Callable[[dict[str, Any]], None] | None = None):
        self.config = config
        self.on_result = on_result
        oracle = config.sub_model == "oracle"
        root, sub, _ = resolve_models(config.model, None if oracle else config.sub_model)
        self.root_spec = root
        self.offline = root.split(":")[0] == "baseline"
        self.sub_spec = "oracle" if oracle else sub
        self.oracle = OracleLabelLM()
        self.docqa_oracle = DocQAOracleLM()
        self._rlms: dict[tuple[str, str], tuple[RLM, LMClient]] = {}
        self._corpora: dict[str, CorpusRecord] = {}

    # -- models -------------------------------------------------------------------------
    def _sub(self, family: str) -> LMClient:
        default = self.offline and self.config.sub_model is None
        if family in _ORACLE_FAMILIES and (self.sub_spec == "oracle" or default):
            return self.oracle
        if self.sub_spec == "oracle" or self.sub_spec.split(":")[0] == "baseline":
            return make_client("baseline", role="sub")
        return make_client(self.sub_spec, role="sub")

    def _root_spec_for(self, family: str, method: str) -> str:
        if not self.offline:
            return self.root_spec
        if method in ("base", "retrieval"):
            return "baseline:bench-reader"
        return {
            "oolong": "baseline:bench-oolong",
            "oolong-pairs": "baseline:bench-oolong",
            "codeqa": "baseline:bench-codeqa",
            "docqa": "baseline:bench-docqa",
        }.get(family, "baseline:bm25-extractive")

    def _root(self, family: str, method: str) -> LMClient:
        if method in ("base", "retrieval"):
            return OfflineReaderLM() if self.offline else make_client(self.root_spec, role="root")
        if self.offline and family == "docqa":
            return self.docqa_oracle
        if self.offline:
            return offline_root(family, sub_calls=method != "rlm-d0")
        return make_client(self.root_spec, role="root")

    def rlm_for(self, family: str, method: str) -> tuple[RLM, LMClient]:
        """The RLM (store, budgets, LM stack) and root client for ``family`` × ``method``."""
        key = (family, method)
        if key not in self._rlms:
            from ..api import RLM

            cfg = self.config
            root = self._root(family, method)
            rlm = RLM(
                model=root,
                sub_model=self._sub(family),
                budgets=method_budgets(method, cfg.budgets),
                home=cfg.home,
                cache=cfg.cache,
                max_concurrency=cfg.max_concurrency,
                notice=lambda _msg: None,
            )
            self._rlms[key] = (rlm, root)
        return self._rlms[key]

    # -- corpora ------------------------------------------------------------------------
    def corpus_for(self, rlm: RLM, task: Task) -> CorpusRecord:
        """The task's corpus: its inline context stored, or its folder ingested (once per
        run). Raises :class:`ConfigError` when a folder's documents do not match the task."""
        if not task.corpus_path:
            return rlm.texts(task.context)
        corpus = self._corpora.get(task.corpus_path)
        if corpus is None:
            corpus = rlm.ingest(task.corpus_path)
            self._corpora[task.corpus_path] = corpus
        if corpus_fingerprint((d.name, d.text_sha256) for d in corpus.documents) != task.context_sha256:
            raise ConfigError(
                f"task {task.id}: the documents of {task.corpus_path} are not the ones its questions were made "
                "from (files or rlmx's parsers changed): generate the tasks again"
            )
        return corpus

    def _inline(self, rlm: RLM, task: Task, corpus: CorpusRecord) -> Task:
        """``task`` with a folder's texts as its inline context (for ``base``)."""
        if not task.corpus_path:
            return task
        blobs = rlm.store.blobs
        text = "".join(
            f"### File: {d.name}\n{blobs.get(d.text_key).decode('utf-8').rstrip()}\n\n" for d in corpus.documents
        )
        return dataclasses.replace(task, context=text)

    # -- running ------------------------------------------------------------------------
    async def run_one(self, task: Task, method: str) -> dict[str, Any]:
        """Run ``method`` on ``task``; returns the result row (never raises for model errors)."""
        rlm, root = self.rlm_for(task.family, method)
        if task.family in _ORACLE_FAMILIES:
            self.oracle.add(task.meta.get("labels", {}))
        if root is self.docqa_oracle:
            self.docqa_oracle.add(task)
        out = _Outcome(root_spec=root.spec, sub_model="" if method in ("base", "retrieval") else rlm.sub_spec)
        t0 = time.perf_counter()
        try:
            corpus = self.corpus_for(rlm, task)
            out.ingest_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            if method in ("base", "retrieval"):
                direct = await run_direct(
                    rlm,
                    root,
                    method,
                    self._inline(rlm, task, corpus) if method == "base" else task,
                    corpus,
                    window=window_tokens(root.spec, self.config.window_tokens),
                    top_k=self.config.top_k,
                    max_output_tokens=self.config.max_output_tokens,
                )
                out.set(direct.execution_id, direct.status, direct.text, direct.usage, direct.error)
                out.extra.update(truncated=direct.truncated, context_chars_sent=direct.context_chars_sent)
            else:
                answer = await rlm.aask(corpus, task.question)
                out.set(answer.execution_id, answer.status, answer.text, answer.usage, answer.error)
                out.extra.update(truncated=False, max_depth_reached=answer.usage.max_depth_reached)
                if "evidence" in task.meta:
                    cites = [c.model_dump() for c in answer.citations]
                    out.extra.update(citations=cites, evidence_cited=evidence_cited(cites, task.meta["evidence"]))
        except RlmxError as e:  # the REPL could not start, a bad configuration...
            out.error = f"{type(e).__name__}: {e}"
        out.wall_s = time.perf_counter() - t0
        return self._row(task, method, out)

    def _row(self, task: Task, method: str, out: _Outcome) -> dict[str, Any]:
        usage = out.usage
        if "evidence" in task.meta and "evidence_cited" not in out.extra:  # a failed run cites nothing
            direct = method in ("base", "retrieval")
            out.extra.update(citations=[], evidence_cited=None if direct else 0.0)
        row = {
            "task_id": task.id,
            "family": task.family,
            "length_tokens": task.length_tokens,
            "context_chars": task.context_chars,
            "seed": task.seed,
            "kind": task.meta.get("kind"),
            "method": method,
            "root_model": out.root_spec,
            "sub_model": out.sub_model,
            "status": out.status.value,
            "score": round(score(task.answer_type, out.text, task.answer, task.meta), 6),
            "answer": out.text if len(out.text) <= 4000 else out.text[:4000] + " [...]",
            "gold": task.answer,
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cost_usd": usage.cost_usd,
            "cached_calls": usage.cached_calls,
            "turns": usage.turns,
            "sub_calls": usage.sub_calls,
            "wall_s": round(out.wall_s, 4),
            "ingest_s": round(out.ingest_s, 4),
            **out.extra,
            "execution_id": out.execution_id,
            "error": out.error,
            "rlmx_version": __version__,
            "generator": task.generator,
        }
        if self.on_result is not None:
            self.on_result(row)
        return row

    async def arun(self, tasks: Iterable[Task], out: Path, *, resume: bool = False) -> list[dict[str, Any]]:
        """Run every task with every method, appending rows to ``out`` (JSONL) as they
        finish. With ``resume``, (task, method, root model) rows already in ``out`` are kept
        and not run again; otherwise ``out`` is overwritten."""
        done: set[tuple[str, str, str]] = set()
        if resume and out.exists():
            for line in out.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    r = json.loads(line)
                    done.add((r["task_id"], r["method"], r.get("root_model", "")))
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text("", encoding="utf-8")
        jobs = [
            (t, m)
            for t in tasks
            for m in self.config.methods
            if (t.id, m, self._root_spec_for(t.family, m)) not in done
        ]
        sem = asyncio.Semaphore(max(1, self.config.jobs))
        rows: list[dict[str, Any]] = []

        async def one(task: Task, method: str) -> None:
            async with sem:
                try:
                    row = await self.run_one(task, method)
                except Exception as e:  # a bug must cost one row, not the whole run
                    spec = self._root_spec_for(task.family, method)
                    row = self._row(task, method, _Outcome(spec, "", error=f"{type(e).__name__}: {e}"))
            rows.append(row)
            with out.open("a", encoding="utf-8") as f:
                f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")

        try:
            await asyncio.gather(*(one(t, m) for t, m in jobs))
        finally:
            for rlm, _ in self._rlms.values():
                if rlm._store is not None:
                    rlm._store.close()
        return rows

    def run(self, tasks: Iterable[Task], out: Path, *, resume: bool = False) -> list[dict[str, Any]]:
        """Synchronous :meth:`arun`."""
        return asyncio.run(self.arun(tasks, out, resume=resume))


def progress_line(row: dict[str, Any]) -> str:
    """One human line per result, for stderr."""
    cost = "cost ?" if row["cost_usd"] is None else f"${row['cost_usd']:.4f}"
    flag = " truncated" if row.get("truncated") else ""
    return (
        f"{row['task_id']:<32} {row['method']:<9} score {row['score']:.2f}  {row['status']:<18} "
        f"{row['input_tokens'] + row['output_tokens']:>9,} tok  {cost}  {row['wall_s']:.2f} s{flag}"
    )


def print_progress(row: dict[str, Any]) -> None:
    print(progress_line(row), file=sys.stderr, flush=True)
