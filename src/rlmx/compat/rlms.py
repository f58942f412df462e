"""A drop-in for the official ``rlms`` library (``from rlm import RLM``): switch with one line,
``from rlmx.compat.rlms import RLM``, and model code runs in rlmx's sandboxed REPL under
rlmx's budgets, store and traces.

``RLM(backend=..., backend_kwargs=..., ...).completion(prompt, root_prompt=None)`` returns
an :class:`RLMChatCompletion` with the official fields. ``prompt`` becomes the REPL's
``context`` (a ``str`` as text; a name → text mapping as documents; any other JSON value as
its JSON text); ``root_prompt`` is the question the root LM sees (without one, it is told to
carry out the prompt in ``context``). The root system prompt is rlmx's plus the official
``answer`` dict paragraph (:func:`rlmx.compat.rlms_backends.compat_prompt`); model code may end
with ``answer["content"] = ...; answer["ready"] = True`` or with ``FINAL(...)``.
What is mapped, what is refused and why: docs/compat.md.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..api import RLM as _RLM
from ..config import Settings
from ..engine.trace import load_trace
from ..errors import BudgetExceededError, ConfigError
from ..types import Budgets, Status
from .rlms_backends import CompatPromptLM, make_backend_client
from .rlms_types import ModelUsageSummary, RLMChatCompletion, RLMLogger, UsageSummary, usage_from_trace

__all__ = ["RLM", "ModelUsageSummary", "RLMChatCompletion", "RLMLogger", "UsageSummary"]

DEFAULT_QUESTION = (
    "The context holds the user's prompt. Carry out what it asks, and give the result as your final answer."
)
_UNSUPPORTED_DEFAULTS: dict[str, Any] = {
    "compaction": False,
    "compaction_threshold_pct": 0.85,
    "on_subcall_start": None,
    "on_subcall_complete": None,
    "on_iteration_start": None,
    "on_iteration_complete": None,
    "sub_sampling_args": None,
    "orchestrator": True,
    "user_prologue": None,
}


def _tool_functions(custom_tools: Mapping[str, Any]) -> list[Callable[..., Any]]:
    """``custom_tools`` (name → callable, or ``(callable, description)``) as functions named
    by their keys. Raises ConfigError for a non-callable value (the official library puts
    those in the REPL as data; rlmx's REPL tools are functions run by the orchestrator)."""
    out: list[Callable[..., Any]] = []
    for name, entry in custom_tools.items():
        fn, doc = (entry[0], entry[1]) if isinstance(entry, tuple) and len(entry) == 2 else (entry, None)
        if not callable(fn):
            raise ConfigError(
                f"custom_tools[{name!r}] is not callable: rlmx runs tools as functions outside the sandbox; "
                "pass data in the prompt (the REPL's context) or wrap it in a function"
            )
        if not str(name).isidentifier():
            raise ConfigError(f"custom_tools key {name!r} is not a Python identifier; name tools like variables")

        @functools.wraps(fn)
        def tool(*args: Any, __fn: Callable[..., Any] = fn, **kwargs: Any) -> Any:
            return __fn(*args, **kwargs)

        tool.__name__ = tool.__qualname__ = str(name)
        if doc:
            tool.__doc__ = str(doc)
        out.append(tool)
    return out


class RLM:
    """The official library's ``RLM`` over rlmx (see the module doc and docs/compat.md).

    Mapped: ``backend``/``backend_kwargs`` (root LM; :mod:`rlmx.compat.rlms_backends`),
    ``other_backends``/``other_backend_kwargs`` (one sub-LM; default: the root LM),
    ``environment="local"`` (rlmx's sandboxed REPL process), ``max_depth``,
    ``max_iterations`` (turns per execution), ``max_budget`` (USD), ``max_timeout``
    (seconds), ``max_tokens`` (input + output tokens of the whole tree),
    ``custom_system_prompt`` (placed before rlmx's system prompt), ``logger``
    (:class:`RLMLogger`), ``verbose`` (progress on stderr), ``custom_tools`` (functions, as
    ``rlmx.RLM(tools=...)``), ``max_concurrent_subcalls``, ``sampling_args``.
    rlmx-only keywords: ``home`` (the store folder), ``cache`` (the LLM cache, off by default
    as the official library has none), ``settings``.

    Raises :class:`~rlmx.errors.ConfigError` for what rlmx cannot honour rather than ignore
    it: another ``environment``, ``persistent=True``, ``max_errors``, ``depth`` other than 0,
    ``custom_sub_tools`` other than ``custom_tools``, a logger that is not an
    :class:`RLMLogger`, and the official options listed in docs/compat.md when set.
    """

    def __init__(
        self,
        backend: str = "openai",
        backend_kwargs: dict[str, Any] | None = None,
        environment: str = "local",
        environment_kwargs: dict[str, Any] | None = None,
        depth: int = 0,
        max_depth: int = 1,
        max_iterations: int = 30,
        max_budget: float | None = None,
        max_timeout: float | None = None,
        max_tokens: int | None = None,
        max_errors: int | None = None,
        custom_system_prompt: str | None = None,
        other_backends: list[str] | None = None,
        other_backend_kwargs: list[dict[str, Any]] | None = None,
        logger: RLMLogger | None = None,
        verbose: bool = False,
        persistent: bool = False,
        custom_tools: dict[str, Any] | None = None,
        custom_sub_tools: dict[str, Any] | None = None,
        max_concurrent_subcalls: int = 4,
        sampling_args: dict[str, Any] | None = None,
        *,
        home: str | Path | None = None,
        cache: bool = False,
        settings: Settings | None = None,
        **official: Any,
    ) -> None:
        unknown = sorted(set(official) - set(_UNSUPPORTED_DEFAULTS))
        if unknown:
            raise TypeError(f"RLM() got unexpected keyword argument(s) {unknown}")
        set_ = sorted(k for k, v in official.items() if v != _UNSUPPORTED_DEFAULTS[k])
        if set_:
            raise ConfigError(f"rlmx.compat.rlms does not support {set_}; drop them or use rlmx.RLM (docs/compat.md)")
        if environment != "local" or environment_kwargs:
            raise ConfigError(
                f"environment={environment!r} with environment_kwargs={environment_kwargs!r}: rlmx runs model "
                "code in its own sandboxed REPL process; use environment='local' with no environment_kwargs"
            )
        if persistent:
            raise ConfigError(
                "persistent=True is not supported: each completion() gets a fresh REPL; pass earlier results "
                "in the prompt, or use rlmx's runtime mode (docs/compat.md)"
            )
        if max_errors is not None:
            raise ConfigError("max_errors is not supported: rlmx shows errors to the model and stops at max_iterations")
        if depth != 0:
            raise ConfigError("depth is internal to the official library; leave it at 0 (max_depth bounds recursion)")
        if custom_sub_tools is not None and custom_sub_tools != custom_tools:
            raise ConfigError("custom_sub_tools must be None or equal custom_tools: rlmx's tools serve the whole tree")
        if logger is not None and not isinstance(logger, RLMLogger):
            raise ConfigError("logger must be rlmx.compat.rlms.RLMLogger (import it from rlmx.compat.rlms)")
        if other_backends is not None and len(other_backends) != 1:
            raise ConfigError("other_backends takes exactly one backend: the sub-LM")
        extra: dict[str, Any] = {}
        if custom_tools:
            extra["tools"] = _tool_functions(custom_tools)
        settings = settings or Settings()
        timeout_s = settings.request_timeout_s
        kwargs = dict(backend_kwargs or {})
        if sampling_args:
            kwargs["sampling_args"] = {**(kwargs.get("sampling_args") or {}), **sampling_args}
        root = make_backend_client(backend, kwargs, timeout_s=timeout_s)
        sub = root
        if other_backends:
            sub_kwargs = (other_backend_kwargs or [{}])[0]
            sub = make_backend_client(other_backends[0], sub_kwargs, timeout_s=timeout_s)
        budgets = Budgets(
            max_turns=max_iterations,
            max_depth=max_depth,
            max_cost_usd=max_budget,
            max_wall_seconds=max_timeout,
            max_total_tokens=max_tokens,
        )
        self.backend, self.backend_kwargs = backend, backend_kwargs
        self.max_iterations, self.max_depth = max_iterations, max_depth
        self.logger, self.verbose = logger, verbose
        self._rlm = _RLM(
            model=CompatPromptLM(root, custom_system_prompt),
            sub_model=sub,
            budgets=budgets,
            home=home,
            cache=cache,
            max_concurrency=max_concurrent_subcalls,
            settings=settings,
            on_event=self._print_event if verbose else None,
            **extra,
        )

    @property
    def rlm(self) -> _RLM:
        """The :class:`rlmx.RLM` underneath (its store holds the traces)."""
        return self._rlm

    def _print_event(self, kind: str, data: dict[str, Any]) -> None:
        fields = " ".join(f"{k}={data[k]}" for k in ("depth", "turn", "status", "kind") if k in data)
        print(f"[rlmx] {kind} {fields}".rstrip(), file=sys.stderr, flush=True)

    def completion(self, prompt: str | dict[str, Any] | list[Any], root_prompt: str | None = None) -> RLMChatCompletion:
        """Run the RLM over ``prompt`` (the REPL's ``context``) and return the official result
        type. ``root_prompt``: the question shown to the root LM. Statuses COMPLETED and
        MAX_TURNS_EXCEEDED return (the latter with rlmx's closing answer, as the official
        library asks for a last answer); BUDGET_EXCEEDED raises
        :class:`~rlmx.errors.BudgetExceededError` with ``partial_answer``; FAILED and
        CANCELLED return with ``error`` set. Raises ConfigError for an empty prompt."""
        if isinstance(prompt, str):
            if not prompt.strip():
                raise ConfigError("the prompt is empty: pass the text the RLM should work on")
            corpus = self._rlm.texts(prompt)
        elif isinstance(prompt, Mapping) and prompt and all(isinstance(v, str) for v in prompt.values()):
            corpus = self._rlm.texts({str(k): v for k, v in prompt.items()})
        else:
            corpus = self._rlm.texts(json.dumps(prompt, ensure_ascii=False, indent=1, default=str))
        t0 = time.perf_counter()
        ans = self._rlm.ask(corpus, root_prompt or DEFAULT_QUESTION)
        elapsed = time.perf_counter() - t0
        trace = load_trace(self._rlm.store.meta, ans.execution_id)
        if ans.status is Status.BUDGET_EXCEEDED:
            err = BudgetExceededError(
                f"a budget of the execution tree is spent ({ans.error}); raise max_budget/max_timeout/max_tokens",
                budget=_budget_name(ans.error),
            )
            err.partial_answer = ans.text  # type: ignore[attr-defined]
            raise err
        metadata = None
        if self.logger is not None:
            metadata = {
                "run_metadata": {
                    "root_model": self._rlm.root_spec,
                    "sub_model": self._rlm.sub_spec,
                    "max_depth": self.max_depth,
                    "max_iterations": self.max_iterations,
                    "backend": self.backend,
                    "environment_type": "local",
                },
                "execution_id": ans.execution_id,
                "status": ans.status.value,
                "trace": trace,
            }
            self.logger.log_trajectory(metadata)
        failed = ans.status in (Status.FAILED, Status.CANCELLED)
        return RLMChatCompletion(
            root_model=str((self.backend_kwargs or {}).get("model_name", "unknown")),
            prompt=prompt,
            response=ans.text,
            usage_summary=usage_from_trace(trace),
            execution_time=elapsed,
            metadata=metadata,
            error=f"{ans.status.value}: {ans.error}" if failed else None,
        )


_BUDGET_WORDS = (
    ("wall-time budget", "max_wall_seconds"),
    ("token budget", "max_total_tokens"),
    ("cost budget", "max_cost_usd"),
    ("sub-call budget", "max_sub_calls"),
    ("tool-call budget", "max_tool_calls"),
)


def _budget_name(error: str | None) -> str:
    """The limit an execution's BUDGET_EXCEEDED error names (rlmx.engine.budget's wording)."""
    for words, name in _BUDGET_WORDS:
        if error and words in error:
            return name
    return "budget"
