"""The Python API: ``RLM(model=..., sub_model=..., budgets=...).ask(paths_or_corpus, question)``."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from .config import Settings
from .corpus import context_spec, corpus_from_texts, ingest
from .corpus.records import CorpusRecord
from .engine.budget import BudgetedLM, BudgetTracker
from .engine.estimate import Estimate, EstimateInputs, estimate_cost
from .engine.followup import FollowUp, load_followup
from .engine.orchestrator import Engine, EngineOptions, Tree
from .engine.schema import OutputSchema
from .engine.tools import DEFAULT_TOOL_TIMEOUT_S, Tool, ToolRegistry
from .errors import ConfigError
from .lm.base import LMClient
from .lm.pricing import PriceTable
from .lm.redact import RedactingLM, Redactor, RedactPolicy, redactor_of
from .lm.registry import make_client, resolve_models
from .lm.windows import prompt_chars, window_tokens
from .lm.wrappers import CachedLM, ConcurrencyLimitedLM, RetryingLM
from .store import Store, open_store
from .types import Answer, Budgets, Status

if TYPE_CHECKING:
    from .conversation import Conversation

__all__ = ["RLM"]

PathsOrCorpus = str | Path | Sequence[str | Path] | CorpusRecord
EventSink = Callable[[str, dict[str, Any]], None]


class RLM:
    """A Recursive Language Model runtime (Zhang, Kraska & Khattab, arXiv 2512.24601).

    ``model`` / ``sub_model``: specs (``"openai:gpt-5"``, ``"azure:DEPLOYMENT"``,
    ``"anthropic:MODEL"``, ``"scripted:FILE"``, ``"baseline"``) or :class:`LMClient`
    instances; resolved as documented in :func:`rlmx.lm.registry.resolve_models` (with a
    one-line notice on stderr when falling back to ``baseline``). ``budgets``: a
    :class:`Budgets` or a dict of its fields. ``home``: the store folder (default
    ``$RLMX_HOME`` or ``~/.local/share/rlmx``). ``cache``: use the LLM cache;
    ``cache_namespace``: the part of it this RLM reads and writes (default ``""``: the local
    user's own cache; the service passes ``"tenant:<tenant>"``, so a cached response is shared
    only within a tenant — see :func:`rlmx.lm.wrappers.cache_key`).
    ``compaction_threshold``: compact the root conversation past this fraction of the root
    model's window (``root_window_tokens``, tokens; default its known window, and no
    compaction when it is unknown); None: never (:mod:`rlmx.engine.compaction`).
    ``on_event(kind, data)`` receives progress events (turn_started, turn_finished,
    subcall, execution_started, execution_finished).
    ``tools``: custom tools, Python functions model code calls by name (a list, a
    ``{name: function}`` mapping or a :class:`~rlmx.engine.tools.ToolRegistry`; an MCP
    server's: :func:`rlmx.engine.mcp_tools.mcp_tools`; they run in
    this process, each call under ``tool_timeout_s`` seconds and ``max_tool_calls``, with JSON
    arguments and results; see docs/repl.md). Raises ConfigError for an invalid tool name.
    ``redact``: an opt-in redaction policy (``"emails,keys,phones,REGEX"``, a list of such
    strings, or a :class:`~rlmx.lm.redact.RedactPolicy`): every prompt to the root and sub
    LMs is masked, replies and the answer carry the originals, and the root execution's
    ``usage["redaction"]`` records counts per kind (never values); see :meth:`make_tree`.

    Raises :class:`~rlmx.errors.ConfigError` for an unknown model spec, or a cost budget
    with a model whose price is unknown (add it to a prices file, see ``rlmx.lm.pricing``).
    """

    def __init__(
        self,
        model: str | LMClient | None = None,
        sub_model: str | LMClient | None = None,
        budgets: Budgets | dict[str, Any] | None = None,
        *,
        home: str | Path | None = None,
        cache: bool = True,
        cache_namespace: str = "",
        max_concurrency: int | None = None,
        step_timeout_s: float | None = None,
        output_max_chars: int | None = None,
        settings: Settings | None = None,
        on_event: EventSink | None = None,
        notice: Callable[[str], None] | None = None,
        compaction_threshold: float | None = 0.8,
        root_window_tokens: int | None = None,
        redact: str | Sequence[str] | RedactPolicy | None = None,
        tools: Sequence[Callable[..., Any] | Tool] | Mapping[str, Callable[..., Any]] | ToolRegistry | None = None,
        tool_timeout_s: float = DEFAULT_TOOL_TIMEOUT_S,
    ):
        self.settings = settings or Settings()
        if home is not None:
            self.settings = self.settings.model_copy(update={"home": Path(home)})
        try:
            self.budgets = budgets if isinstance(budgets, Budgets) else Budgets(**(budgets or {}))
        except ValidationError as e:
            fields = ", ".join(Budgets.model_fields)
            raise ConfigError(
                f"invalid budgets ({e.errors()[0]['msg']}: {e.errors()[0]['loc']}); fields: {fields}"
            ) from None
        spec_root = model if isinstance(model, str) else None
        spec_sub = sub_model if isinstance(sub_model, str) else None
        root_spec, sub_spec, msg = resolve_models(
            spec_root if model is None or isinstance(model, str) else "baseline",
            spec_sub if sub_model is None or isinstance(sub_model, str) else "baseline",
            settings=self.settings,
        )
        if msg and model is None:
            (notice or (lambda m: print(m, file=sys.stderr)))(msg)
        self._root = (
            model if isinstance(model, LMClient) else make_client(root_spec, settings=self.settings, role="root")
        )
        if isinstance(sub_model, LMClient):
            self._sub = sub_model
        elif sub_model is None and isinstance(model, LMClient):
            self._sub = model
        else:
            self._sub = make_client(sub_spec, settings=self.settings, role="sub")
        prices_file = self.settings.prices_file
        if prices_file is None and (self.settings.home / "prices.toml").exists():
            prices_file = self.settings.home / "prices.toml"
        self.prices = PriceTable.load(prices_file)
        if self.budgets.max_cost_usd is not None:
            for c in (self._root, self._sub):
                if self.prices.cost(c.spec, 0, 0) is None:
                    raise ConfigError(
                        f"no price is known for {c.spec}, so a cost budget cannot be enforced: add "
                        "it to a prices file (RLMX_PRICES_FILE or $RLMX_HOME/prices.toml) or drop "
                        "--max-cost-usd"
                    )
        self.cache = cache
        self.cache_namespace = cache_namespace
        self.max_concurrency = max_concurrency or self.settings.max_concurrency
        if tools is not None and not isinstance(tools, ToolRegistry):
            tools = ToolRegistry(dict(tools) if isinstance(tools, Mapping) else tools, timeout_s=tool_timeout_s)
        self.options = EngineOptions(
            budgets=self.budgets,
            tools=tools or None,
            step_timeout_s=step_timeout_s or self.settings.step_timeout_s,
            output_max_chars=output_max_chars or self.settings.output_max_chars,
            repl_output_cap_chars=self.settings.repl_output_cap_chars,
            sub_lm_chars=prompt_chars(self._sub.spec),
            compaction_threshold=compaction_threshold,
            root_window_tokens=root_window_tokens,
        )
        self.on_event = on_event
        self.redact = RedactPolicy.parse(redact)
        self._store: Store | None = None

    @property
    def root_spec(self) -> str:
        return self._root.spec

    @property
    def sub_spec(self) -> str:
        return self._sub.spec

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.settings.home)
        return self._store

    def ingest(
        self,
        paths: str | Path | Sequence[str | Path],
        on_progress: Callable[[str, int, int], None] | None = None,
        *,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
    ) -> CorpusRecord:
        """Ingest files, folders or globs into the store. Raises ``IngestError`` when nothing
        could be ingested; single-file failures are in ``CorpusRecord.failures``; skipped
        non-documents and duplicates in ``skipped`` / ``duplicates`` (``include`` /
        ``exclude``: glob patterns that override the skip rules, see ``rlmx.corpus.filter``)."""
        items = [paths] if isinstance(paths, str | Path) else list(paths)
        return ingest(items, self.store, on_progress=on_progress, include=include, exclude=exclude)

    def texts(self, texts: str | Sequence[str] | Mapping[str, str]) -> CorpusRecord:
        """Store in-memory strings as a corpus: one string gives a ``str``-like ``context``
        (as in the paper), a list or a name → text mapping gives documents."""
        return corpus_from_texts(texts, self.store)

    def _wrap(
        self,
        client: LMClient,
        tracker: BudgetTracker,
        sem: asyncio.Semaphore,
        role: str,
        redactor: Redactor | None = None,
    ) -> LMClient:
        lm: LMClient = ConcurrencyLimitedLM(RetryingLM(client, max_attempts=self.settings.max_retries + 1), sem)
        if self.cache:
            lm = CachedLM(lm, self.store.meta, self.cache_namespace)
        if redactor is not None:  # outside the cache: cache entries hold placeholders only
            lm = RedactingLM(lm, redactor)
        return BudgetedLM(lm, tracker, role=role)

    def make_tree(
        self,
        engine: Engine,
        *,
        sub_lm: LMClient | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Tree:
        """The shared state of one execution tree: a fresh budget tracker and the root and
        sub LMs wrapped (retry, concurrency bound, cache, budget). ``sub_lm`` replaces the
        sub-LM client (e.g. an MCP client's own model); ``should_stop`` is asked at every
        turn boundary (cancellation). With a redaction policy, one
        :class:`~rlmx.lm.redact.Redactor` (the tree's value ↔ placeholder mapping, in this
        process's memory only) wraps both LMs."""
        tracker = BudgetTracker(self.budgets, self.prices)
        sem = asyncio.Semaphore(self.max_concurrency)
        redactor = Redactor(self.redact) if self.redact.enabled else None
        return Tree(
            engine,
            self.budgets,
            tracker,
            self._wrap(self._root, tracker, sem, "root", redactor),
            self._wrap(sub_lm or self._sub, tracker, sem, "sub", redactor),
            self.on_event,
            should_stop,
        )

    async def aask(
        self,
        paths_or_corpus: PathsOrCorpus,
        question: str,
        output_schema: dict[str, Any] | type[BaseModel] | None = None,
        *,
        execution_id: str | None = None,
        resume: bool = False,
        should_stop: Callable[[], bool] | None = None,
        sub_lm: LMClient | None = None,
        follow_up: str | None = None,
    ) -> Answer:
        """Answer ``question`` over a corpus (async). See :meth:`ask`.

        ``follow_up``: the id of a finished root execution over the same corpus that this
        question follows up (:mod:`rlmx.engine.followup`: its REPL variables and the earlier
        exchanges carry over; raises ``ConfigError`` otherwise). :meth:`session` wraps it.

        Service hooks: ``execution_id`` names the root execution; ``resume=True`` goes on
        from the committed turns of that execution (:mod:`rlmx.engine.resume`; a fresh
        start when none was committed); ``should_stop()`` is asked at each turn boundary
        and True ends the execution as CANCELLED; ``sub_lm`` replaces the sub-LM client."""
        if not question or not question.strip():
            raise ConfigError("the question is empty: pass a question (or --question-file)")
        schema = OutputSchema(output_schema) if output_schema is not None else None

        def prepare() -> tuple[CorpusRecord, Any, Engine, Tree, Any, FollowUp | None]:
            """Store and blob I/O before the first turn (ingestion, the context's files, the
            snapshot key, the committed turns): in a thread, never on the event loop."""
            corpus = paths_or_corpus if isinstance(paths_or_corpus, CorpusRecord) else self.ingest(paths_or_corpus)
            spec = context_spec(corpus, self.store)
            engine = Engine(self.store, self.options)
            tree = self.make_tree(engine, sub_lm=sub_lm, should_stop=should_stop)
            resumer = None
            if resume and execution_id is not None:
                from .engine.resume import prepare_resume

                resumer = prepare_resume(self.store.meta, execution_id, tree.tracker)
            followup = None
            if follow_up is not None:
                followup = load_followup(self.store.meta, follow_up, corpus.corpus_id, engine._load_snapshot)
            return corpus, spec, engine, tree, resumer, followup

        corpus, spec, engine, tree, resumer, followup = await asyncio.to_thread(prepare)
        tracker = tree.tracker
        try:
            out = await engine.run_execution(
                tree,
                question=question,
                spec=spec,
                corpus_id=corpus.corpus_id,
                depth=0,
                parent_id=None,
                root_id=None,
                schema=schema,
                execution_id=execution_id,
                resume=resumer,
                followup=followup,
            )
        finally:
            engine.close()
        redactor = redactor_of(tree.root_lm)
        if redactor is not None:
            await asyncio.to_thread(self._record_redaction, out.execution_id, redactor)
        usage = tracker.usage()
        return Answer(
            execution_id=out.execution_id,
            status=out.status,
            text=out.text,
            citations=out.citations,
            usage=usage,
            cost_usd=usage.cost_usd,
            fields=out.fields,
            error=out.error,
        )

    def estimate(
        self,
        paths_or_corpus: PathsOrCorpus,
        question: str,
        output_schema: dict[str, Any] | type[BaseModel] | None = None,
    ) -> Estimate:
        """The expected range and the worst case (tokens, USD) of asking ``question``, without
        calling a model: the corpus is ingested (or taken as given), the root prompt built
        exactly as :meth:`ask` would, and :func:`rlmx.engine.estimate.estimate_cost` applied
        with this RLM's budgets, windows and price table (formula and sources there).
        ``.to_dict()`` is its JSON shape. Raises ``ConfigError`` (empty question, bad
        schema) and ``IngestError`` like :meth:`ask`."""
        from .engine.prompting import root_messages

        if not question or not question.strip():
            raise ConfigError("the question is empty: pass a question (or --question-file)")
        schema = OutputSchema(output_schema) if output_schema is not None else None
        corpus = paths_or_corpus if isinstance(paths_or_corpus, CorpusRecord) else self.ingest(paths_or_corpus)
        spec = context_spec(corpus, self.store)
        messages = root_messages(spec, question, self.options, self.budgets, 0, schema)
        inputs = EstimateInputs(
            corpus_chars=corpus.total_chars,
            documents=len(corpus.documents),
            prompt_chars=sum(len(m["content"]) for m in messages),
            root_spec=self.root_spec,
            sub_spec=self.sub_spec,
            budgets=self.budgets,
            output_max_chars=self.options.output_max_chars,
            sub_lm_chars=self.options.sub_lm_chars,
            root_window=window_tokens(self.root_spec),
            sub_window=window_tokens(self.sub_spec),
            root_max_tokens=self._root.max_tokens,
            sub_max_tokens=self._sub.max_tokens,
        )
        return estimate_cost(inputs, self.prices)

    def _record_redaction(self, execution_id: str, redactor: Redactor) -> None:
        """Add the tree's redaction counts (never values) to the root execution's stored
        usage, where the trace and the service's views read it (blocking I/O)."""
        rec = self.store.meta.get_execution(execution_id)
        rec.usage = {**rec.usage, "redaction": redactor.summary()}
        self.store.meta.put_execution(rec)

    async def aclose(self) -> None:
        """Release the root and sub-LM clients' connection pools (they reopen on next use)."""
        await self._root.aclose()
        await self._sub.aclose()

    def session(self, paths_or_corpus: PathsOrCorpus) -> Conversation:
        """A conversation over one corpus: ``.ask(question)`` repeatedly, each question a
        follow-up of the previous one (see :class:`rlmx.conversation.Conversation`). The
        corpus is ingested now. Raises ``IngestError`` when nothing could be ingested."""
        from .conversation import Conversation

        corpus = paths_or_corpus if isinstance(paths_or_corpus, CorpusRecord) else self.ingest(paths_or_corpus)
        return Conversation(self, corpus)

    def ask(
        self,
        paths_or_corpus: PathsOrCorpus,
        question: str,
        output_schema: dict[str, Any] | type[BaseModel] | None = None,
        *,
        follow_up: str | None = None,
    ) -> Answer:
        """Answer ``question`` over files, folders, globs or an ingested corpus.

        Returns an :class:`Answer` (``text``, ``citations`` as SpanRefs, ``status``,
        ``usage``, ``cost_usd`` in USD or None when unknown, ``execution_id``). Statuses
        other than COMPLETED are returned, not raised. Raises ``ConfigError`` (bad schema,
        empty question, a ``follow_up`` that cannot be followed), ``IngestError`` (nothing
        ingested), ``ReplError`` (REPL could not start). Use :meth:`aask` inside a running
        event loop.
        """

        async def ask_once() -> Answer:
            try:
                return await self.aask(paths_or_corpus, question, output_schema, follow_up=follow_up)
            finally:  # this event loop ends here: release the clients' connection pools
                await self.aclose()

        return asyncio.run(ask_once())


def status_exit_code(status: Status) -> int:
    """CLI exit code of an execution status (documented in the README)."""
    return {Status.COMPLETED: 0, Status.MAX_TURNS_EXCEEDED: 3, Status.BUDGET_EXCEEDED: 4}.get(status, 5)
