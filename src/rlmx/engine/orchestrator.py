"""The RLM loop (answerer mode): root LM → ```repl code → REPL step → observation, until FINAL.

Follows the paper's algorithm (Zhang, Kraska & Khattab, arXiv 2512.24601, §2 and
Appendix C): the context never enters the root prompt, only its type and sizes; each turn
runs the first ``repl`` block and returns its printed output truncated head + tail; sub-LM
and child-RLM calls are tool requests resolved here. Every turn is persisted before the
next one starts (DESIGN.md invariant 4).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..corpus.canonical import TextReader
from ..errors import BudgetExceededError, ExecutionCancelled, RlmxError, SchemaError
from ..ids import new_id
from ..sandbox.base import REPL, ContextSpec, FinalSignal, StepResult
from ..sandbox.policy import layer_failures
from ..store import Store
from ..store.base import ExecutionRecord, utcnow
from ..types import Status
from .answer import outcome
from .blocks import parse_response
from .closing import closing_step
from .compaction import make_compactor
from .followup import FollowUp
from .observation import budget_note, final_request, no_code_observation, observation_text
from .observers import turn_event
from .prompting import root_messages
from .resolver import ToolResolverImpl
from .sandboxing import (
    MAX_STORED_SNAPSHOT_BYTES,
    load_snapshot,
    local_repl,
    save_snapshot,
    shared_snapshot_key,
    snapshot_key,
    warn_sandbox,
)
from .schema import OutputSchema
from .state import (
    TASK_CANCELLED,
    EngineOptions,
    ExecutionOutcome,
    ExecutionState,
    ReplFactory,
    ResumePoint,
    Resumer,
    Tree,
)

__all__ = [
    "MAX_STORED_SNAPSHOT_BYTES",
    "Engine",
    "EngineOptions",
    "ExecutionOutcome",
    "ExecutionState",
    "ResumePoint",
    "Resumer",
    "Tree",
    "snapshot_key",
]


class Engine:
    """Runs executions over one :class:`~rlmx.store.Store`.

    ``repl_factory(spec, options, schema_fields) -> REPL`` is the sandbox seam (default:
    :class:`rlmx.sandbox.LocalREPL`). ``run_tree`` is the entry point; ``run_execution``
    is also used by the resolver for children.
    """

    def __init__(self, store: Store, options: EngineOptions, repl_factory: ReplFactory | None = None):
        self.store = store
        self.options = options
        self.repl_factory = repl_factory or local_repl
        self.snapshot_key = shared_snapshot_key(store.home, store.blobs) if repl_factory is None else None
        self._readers: dict[str, TextReader] = {}
        self._names: dict[str, str] = {}

    # -- text access (citations) ----------------------------------------------
    def reader(self, doc_id: str) -> TextReader:
        r = self._readers.get(doc_id)
        if r is None:
            doc = self.store.meta.get_document(doc_id)
            idx = self.store.blobs.local_path(doc.index_key) if doc.index_key else None
            r = TextReader(self.store.blobs.local_path(doc.text_key), doc.length_chars, idx)
            self._readers[doc_id] = r
        return r

    def text_of(self, doc_id: str, start: int, end: int) -> str:
        return self.reader(doc_id).read(start, end)

    def name_of(self, doc_id: str) -> str:
        if doc_id not in self._names:
            self._names[doc_id] = self.store.meta.get_document(doc_id).name
        return self._names[doc_id]

    # -- REPL snapshots (durable state) -------------------------------------------
    def _new_repl(self, spec: ContextSpec, schema_fields: list[str] | None, snapshot: Any = None) -> REPL:
        if self.repl_factory is local_repl:
            return local_repl(spec, self.options, schema_fields, snapshot=snapshot, key=self.snapshot_key)
        return self.repl_factory(spec, self.options, schema_fields)

    def _save_snapshot(self, execution_id: str, turn: int, repl: REPL) -> None:
        """See :func:`.sandboxing.save_snapshot` (blocking I/O)."""
        save_snapshot(self.store.blobs, execution_id, turn, repl)

    def _commit_turn(self, execution_id: str, turn: int, record: dict[str, Any], repl: REPL) -> None:
        """Persist turn ``turn`` (the commit point), then its REPL snapshot (blocking I/O)."""
        self.store.meta.add_turn(execution_id, turn, record)
        self._save_snapshot(execution_id, turn, repl)

    def _load_snapshot(self, execution_id: str, turn: int) -> Any:
        """See :func:`.sandboxing.load_snapshot` (blocking I/O)."""
        return load_snapshot(self.store.blobs, execution_id, turn)

    def _best_so_far(self, st: ExecutionState) -> str:
        """Best answer so far when an execution ends early: the last printed output (its last
        2,000 characters), else the root LM's last prose."""
        turns = self.store.meta.get_turns(st.execution_id)
        for key in ("stdout", "response"):
            for t in reversed(turns):
                if t.get(key):
                    return str(t[key])[-2000:]
        return ""

    def close(self) -> None:
        for r in self._readers.values():
            r.close()
        self._readers.clear()

    def inline_spec(self, text: str) -> ContextSpec:
        from ..corpus import context_spec, corpus_from_texts

        return context_spec(corpus_from_texts(text, self.store), self.store)

    # -- loop -----------------------------------------------------------------
    async def run_execution(
        self,
        tree: Tree,
        *,
        question: str,
        spec: ContextSpec,
        corpus_id: str,
        depth: int,
        parent_id: str | None,
        root_id: str | None,
        schema: OutputSchema | None,
        execution_id: str | None = None,
        resume: Resumer | None = None,
        followup: FollowUp | None = None,
    ) -> ExecutionOutcome:
        """Run one execution (root or child) to its end and return its outcome.

        Model errors, provider failures and a REPL that cannot start end it as FAILED (with the
        reason), budgets as BUDGET_EXCEEDED; it raises only on cancellation or a bug, after
        recording the execution as CANCELLED or FAILED.
        ``resume``: go on from the committed turns of an existing execution (its id and record
        come from ``resume.record``). ``followup``: this execution follows up another in a
        conversation (:mod:`.followup`: its REPL starts from that one's snapshot, its first
        message recalls the earlier exchanges). ``tree.should_stop`` ends it as CANCELLED at a
        turn boundary."""
        if resume is not None:
            execution_id = resume.record.execution_id
        eid = execution_id or new_id("exe")
        st = ExecutionState(tree, eid, root_id or eid, corpus_id, spec, depth)
        tree.tracker.note_depth(depth)
        rec = ExecutionRecord(
            execution_id=eid,
            corpus_id=corpus_id,
            question=question,
            parent_id=parent_id,
            root_id=st.root_id,
            depth=depth,
            root_model=tree.root_lm.spec,
            sub_model=tree.sub_lm.spec,
            budgets=tree.budgets.model_dump(),
            previous_id=followup.previous_id if followup else None,
        )
        if resume is not None:
            rec = resume.record.model_copy(update={"status": Status.RUNNING.value, "error": None, "finished_at": None})
        await asyncio.to_thread(self.store.meta.put_execution, rec)
        tree.emit(
            "execution_started",
            execution_id=eid,
            depth=depth,
            question=question,
            resumed=resume is not None,
            parent_id=parent_id,
        )
        resolver = ToolResolverImpl(st)
        snapshot = await asyncio.to_thread(self._load_snapshot, eid, resume.last_turn) if resume is not None else None
        if resume is None and followup is not None:
            snapshot = followup.snapshot
        repl = self._new_repl(spec, schema.field_names if schema else None, snapshot)
        out: ExecutionOutcome
        t_exec = time.monotonic()
        try:
            await repl.start()
            warn_sandbox(tree, eid, depth, repl)
            if snapshot is not None and getattr(repl, "snapshot", None) is not None:
                st.restored_turn = resume.last_turn if resume is not None else 0
            out = await self._loop(st, repl, resolver, question, schema, resume, followup)
        except BudgetExceededError as e:
            out = ExecutionOutcome(
                eid, Status.BUDGET_EXCEEDED, await asyncio.to_thread(self._best_so_far, st), [], error=str(e)
            )
        except ExecutionCancelled as e:
            out = ExecutionOutcome(
                eid, Status.CANCELLED, await asyncio.to_thread(self._best_so_far, st), [], error=str(e)
            )
        except RlmxError as e:  # provider failed after retries, REPL could not start, ...
            out = ExecutionOutcome(
                eid, Status.FAILED, await asyncio.to_thread(self._best_so_far, st), [], error=f"{type(e).__name__}: {e}"
            )
        except BaseException as e:
            cancelled = isinstance(e, asyncio.CancelledError | KeyboardInterrupt)
            rec.status = (Status.CANCELLED if cancelled else Status.FAILED).value
            rec.error, rec.finished_at = (TASK_CANCELLED if cancelled else repr(e)), utcnow()
            await asyncio.shield(asyncio.to_thread(self.store.meta.put_execution, rec))
            raise
        finally:
            await repl.close()
        rec.status = out.status.value
        rec.answer = out.text
        rec.citations = [c.model_dump() for c in out.citations]
        rec.fields = out.fields
        rec.error = out.error
        rec.usage = (
            tree.tracker.usage().model_dump()
            if depth == 0
            else {"wall_seconds": round(time.monotonic() - t_exec, 3), "turns": st.turn}
        )
        rec.finished_at = utcnow()
        await asyncio.to_thread(self.store.meta.put_execution, rec)
        tree.emit("execution_finished", execution_id=eid, depth=depth, status=out.status.value)
        return out

    async def _loop(
        self,
        st: ExecutionState,
        repl: REPL,
        resolver: ToolResolverImpl,
        question: str,
        schema: OutputSchema | None,
        resume: Resumer | None = None,
        followup: FollowUp | None = None,
    ) -> ExecutionOutcome:
        tree, opts = st.tree, self.options
        budgets = tree.budgets
        messages = root_messages(st.spec, question, opts, budgets, st.depth, schema)
        if followup is not None:
            messages[1] = {"role": "user", "content": followup.preface() + "\n\n" + messages[1]["content"]}
        compactor = make_compactor(opts.compaction_threshold, opts.root_window_tokens, tree.root_lm.spec)
        first_turn = 1
        if resume is not None:
            point = await resume.restore(self, st, repl, resolver, schema)
            if point.outcome is not None:
                return point.outcome
            messages, first_turn = point.messages, point.next_turn
        for turn in range(first_turn, budgets.max_turns + 1):
            await tree.acheck_stop()
            st.turn = turn
            if st.depth == 0:
                tree.tracker.turns = turn
            tree.emit("turn_started", execution_id=st.execution_id, depth=st.depth, turn=turn)
            t0 = time.monotonic()
            compaction = None
            if compactor is not None and compactor.needed(messages):
                summariser = tree.root_lm if budgets.max_sub_calls == 0 else tree.sub_lm
                messages, compaction = await compactor.compact(messages, summariser, question, turn)
            completion = await tree.root_lm.complete(messages)
            t_root = time.monotonic() - t0
            parsed = parse_response(completion.text)
            step: StepResult | None = None
            final: FinalSignal | None = None
            code = parsed.code
            if code is None and parsed.final_var:
                code = f"FINAL_VAR({parsed.final_var!r})"
            if code is not None:
                step = await repl.run(code, turn=turn, resolver=resolver)
                st.log_spans(step.span_log)
                final = step.final
            elif parsed.final_text is not None:
                final = FinalSignal(kind="FINAL", answer=parsed.final_text)
            error = step.error if step else None
            fields = None
            if final is not None and schema is not None:
                try:
                    fields = schema.validate(final)
                except SchemaError as e:
                    error, final = f"SchemaError: {e}", None
            if step is None and final is None:
                observation = no_code_observation(question)
                if turn == budgets.max_turns:
                    observation += "\n\n" + final_request(max_turns=turn, question=question)
            else:
                output = step.stdout if step else ""
                observation = observation_text(
                    turn=turn,
                    output=output,
                    error=error,
                    notes=step.notes if step else [],
                    variables=step.variables if step else [],
                    question=question,
                    turns_left=budgets.max_turns - turn,
                    max_chars=opts.output_max_chars,
                    budget=budget_note(tree.tracker.left(), budgets),
                )
            t_total = time.monotonic() - t0
            record = {
                "turn": turn,
                "depth": st.depth,
                "prompt": messages if turn == 1 else None,
                "response": completion.text,
                "root_model": completion.spec,
                "cached": completion.cached,
                "cache_error": completion.raw.get("cache_error"),
                "input_tokens": completion.input_tokens,
                "output_tokens": completion.output_tokens,
                "cost_usd": completion.raw.get("cost_usd"),
                "code": code,
                "stdout": step.stdout if step else None,
                "variables": step.variables if step else [],
                "error": error,
                "timed_out": step.timed_out if step else False,
                "final": final.model_dump() if final else None,
                "observation": None if final else observation,
                "span_log": [e.model_dump() for e in step.span_log] if step else [],
                "timings": {
                    "root_s": round(t_root, 4),
                    "step_s": round(step.duration_s, 4) if step else 0.0,
                    "total_s": round(t_total, 4),
                },
            }
            if compaction is not None:
                record["compaction"] = compaction
            sandbox_failures = layer_failures(getattr(repl, "layers", None) or {})
            if sandbox_failures:  # the REPL runs without a layer (see warn_sandbox)
                record["sandbox_warnings"] = sandbox_failures
            await asyncio.to_thread(self._commit_turn, st.execution_id, turn, record, repl)
            seen = messages[-1:] if turn > 1 else list(messages)  # what this turn added to the root's input
            tree.emit(
                "turn_finished", {"input": seen, "output": completion.text}, **turn_event(st.execution_id, record)
            )
            if tree.tracker.exceeded is not None:
                raise tree.tracker.exceeded
            if final is not None:
                return self._finish(st, resolver, final, Status.COMPLETED, fields)
            messages += [
                {"role": "assistant", "content": completion.text},
                {"role": "user", "content": observation},
            ]
        final, fields = await closing_step(st, repl, resolver, messages, question, schema, self.store.meta)
        return self._finish(st, resolver, final, Status.MAX_TURNS_EXCEEDED, fields)

    def _finish(
        self,
        st: ExecutionState,
        resolver: ToolResolverImpl,
        final: FinalSignal,
        status: Status,
        fields: dict[str, Any] | None,
    ) -> ExecutionOutcome:
        """The outcome of an execution that ended with ``final`` (see :func:`.answer.outcome`)."""
        return outcome(st, resolver, final, status, fields, self.text_of, self.name_of)
