"""OpenTelemetry export of executions (issue 12 item 4; the ``otel`` extra:
``pip install 'rlmx[otel]'``). The trace store stays the source of truth; spans are a copy
for the tools an operator already runs.

:class:`SpanObserver` is an observer of engine events (:mod:`.observers`) that turns them
into spans following the OpenTelemetry GenAI semantic conventions:

* ``invoke_agent rlmx`` — one execution (``gen_ai.operation.name=invoke_agent``,
  ``gen_ai.agent.name=rlmx``, ``rlmx.execution_id``, ``rlmx.depth``, ``rlmx.status``); a
  child execution (``rlm_query``) is a child of the parent's turn span.
* ``turn N`` — one turn (``rlmx.turn``), with two children: ``chat MODEL`` — the root-LM
  call (``gen_ai.operation.name=chat``, ``gen_ai.provider.name``, ``gen_ai.request.model``,
  ``gen_ai.usage.input_tokens``, ``gen_ai.usage.output_tokens``, ``rlmx.cached``,
  ``rlmx.cost_usd``) — and ``execute_tool repl`` — the REPL step (``gen_ai.tool.name=repl``;
  status ERROR when the step failed). The turn's sub-LM calls are ``chat MODEL`` spans
  under the turn too (``rlmx.subcall_id``, ``rlmx.subcall_kind``).

Prompts and responses are left out unless ``capture_content`` (``RLMX_OTEL_CAPTURE_CONTENT=1``
or the standard ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``): then a chat
span carries ``gen_ai.input.messages`` (the messages that call added to the conversation —
the system prompt and question on turn 1, the last observation after) and
``gen_ai.output.messages`` as JSON.

Spans are made from the events' own clock readings and durations (seconds), so a call's span
covers the call. :func:`observer_from_env` configures the SDK from the standard ``OTEL_*``
variables (``OTEL_TRACES_EXPORTER`` ``otlp``/``console``/``none``,
``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_SERVICE_NAME``...) when no tracer provider was set;
:func:`instrument` sends the spans to a provider of the caller's.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .observers import add_observer

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

__all__ = ["SpanObserver", "capture_content_from_env", "instrument", "observer_from_env"]

log = logging.getLogger("rlmx.engine")

_INSTALL = "install the otel extra: pip install 'rlmx[otel]'"
_TRUE = {"1", "true", "yes", "on"}


def _otel() -> Any:
    try:
        from opentelemetry import trace
    except ImportError:
        raise ConfigError(f"OpenTelemetry export needs opentelemetry-api and -sdk: {_INSTALL}") from None
    return trace


def capture_content_from_env() -> bool:
    """Whether prompts and responses go into spans: ``RLMX_OTEL_CAPTURE_CONTENT`` or
    ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` is true."""
    return any(
        os.environ.get(k, "").strip().lower() in _TRUE
        for k in ("RLMX_OTEL_CAPTURE_CONTENT", "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")
    )


def _messages(messages: list[dict[str, Any]]) -> str:
    return json.dumps(
        [{"role": m.get("role"), "parts": [{"type": "text", "content": m.get("content")}]} for m in messages],
        ensure_ascii=False,
    )


class SpanObserver:
    """Engine events → spans of ``tracer`` (see the module doc). Thread-safe; keeps the open
    spans of running executions only."""

    def __init__(self, tracer: Tracer, *, capture_content: bool = False):
        self.tracer = tracer
        self.capture_content = capture_content
        self._trace = _otel()
        self._lock = threading.Lock()
        self._executions: dict[str, Span] = {}
        self._turns: dict[str, tuple[int, Span, int]] = {}  # execution id -> (turn, span, start ns)

    def _under(self, span: Span | None) -> Any:
        return self._trace.set_span_in_context(span) if span is not None else None

    def _chat(
        self, parent: Span | None, data: dict[str, Any], content: dict[str, Any] | None, start: int, end: int
    ) -> None:
        spec = str(data["model"])
        provider, _, model = spec.partition(":")
        span = self.tracer.start_span(
            f"chat {model or provider}",
            context=self._under(parent),
            kind=self._trace.SpanKind.CLIENT,
            start_time=start,
        )
        span.set_attributes(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": provider,
                "gen_ai.request.model": model or provider,
                "gen_ai.usage.input_tokens": int(data.get("input_tokens") or 0),
                "gen_ai.usage.output_tokens": int(data.get("output_tokens") or 0),
                "rlmx.model_spec": spec,
                "rlmx.cached": bool(data.get("cached")),
            }
        )
        if data.get("cost_usd") is not None:
            span.set_attribute("rlmx.cost_usd", float(data["cost_usd"]))
        if "id" in data:
            span.set_attributes({"rlmx.subcall_id": str(data["id"]), "rlmx.subcall_kind": str(data.get("kind"))})
        if self.capture_content and content is not None:
            span.set_attribute("gen_ai.input.messages", _messages(list(content.get("input") or [])))
            out = [{"role": "assistant", "content": content.get("output")}]
            span.set_attribute("gen_ai.output.messages", _messages(out))
        span.end(end_time=end)

    def __call__(self, kind: str, data: dict[str, Any], content: dict[str, Any] | None = None) -> None:
        now = time.time_ns()
        eid = str(data.get("execution_id"))
        with self._lock:
            if kind == "execution_started":
                self._execution_started(eid, data, now)
            elif kind == "turn_started":
                turn = int(data.get("turn") or 0)
                span = self.tracer.start_span(
                    f"turn {turn}", context=self._under(self._executions.get(eid)), start_time=now
                )
                span.set_attributes({"rlmx.turn": turn, "rlmx.execution_id": eid})
                self._turns[eid] = (turn, span, now)
            elif kind == "turn_finished":
                self._turn_finished(eid, data, content, now)
            elif kind == "subcall" and data.get("model"):
                open_turn = self._turns.get(eid)
                parent = open_turn[1] if open_turn else self._executions.get(eid)
                self._chat(parent, data, content, now - int(float(data.get("seconds") or 0.0) * 1e9), now)
            elif kind == "execution_finished":
                self._execution_finished(eid, data, now)

    def _execution_started(self, eid: str, data: dict[str, Any], now: int) -> None:
        parent_id = str(data.get("parent_id") or "")
        open_turn = self._turns.get(parent_id)  # a child hangs under its parent's turn
        parent = open_turn[1] if open_turn else self._executions.get(parent_id)
        span = self.tracer.start_span("invoke_agent rlmx", context=self._under(parent), start_time=now)
        span.set_attributes(
            {
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": "rlmx",
                "rlmx.execution_id": eid,
                "rlmx.depth": int(data.get("depth") or 0),
                "rlmx.resumed": bool(data.get("resumed")),
            }
        )
        self._executions[eid] = span

    def _turn_finished(self, eid: str, data: dict[str, Any], content: dict[str, Any] | None, now: int) -> None:
        open_turn = self._turns.pop(eid, None)
        if open_turn is None:
            return
        turn, span, start = open_turn
        root_end = start + int(float(data.get("root_s") or 0.0) * 1e9)
        if "model" in data:
            self._chat(span, data, content, start, root_end)
        step_s = float(data.get("step_s") or 0.0)
        if step_s > 0:
            step = self.tracer.start_span("execute_tool repl", context=self._under(span), start_time=root_end)
            step.set_attributes(
                {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "repl", "rlmx.turn": turn}
            )
            if data.get("error"):
                step.set_status(self._trace.Status(self._trace.StatusCode.ERROR, "the step failed"))
            step.end(end_time=min(now, root_end + int(step_s * 1e9)))
        span.end(end_time=now)

    def _execution_finished(self, eid: str, data: dict[str, Any], now: int) -> None:
        open_turn = self._turns.pop(eid, None)
        if open_turn is not None:  # ended inside a turn (a budget, an error)
            open_turn[1].end(end_time=now)
        span = self._executions.pop(eid, None)
        if span is None:
            return
        status = str(data.get("status"))
        span.set_attribute("rlmx.status", status)
        if status == "FAILED":
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, status))
        span.end(end_time=now)


def instrument(tracer_provider: TracerProvider | None = None, *, capture_content: bool = False) -> SpanObserver:
    """Send the spans of every execution in this process to ``tracer_provider`` (default the
    global one) and return the observer (stop with
    :func:`rlmx.engine.observers.remove_observer`). Raises ``ConfigError`` without the
    ``otel`` extra."""
    trace = _otel()
    from .. import __version__

    provider = tracer_provider or trace.get_tracer_provider()
    obs = SpanObserver(provider.get_tracer("rlmx", __version__), capture_content=capture_content)
    add_observer(obs)
    return obs


def _exporters(names: str) -> list[Any]:
    out: list[Any] = []
    for name in (n.strip().lower() for n in names.split(",")):
        if name in ("", "none"):
            continue
        if name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            out.append(ConsoleSpanExporter())
        elif name == "otlp":
            proto = os.environ.get(
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
            )
            package = "grpc" if proto.strip() == "grpc" else "http"
            try:
                if package == "grpc":
                    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
                else:
                    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            except ImportError:
                log.warning("OTLP trace export needs opentelemetry-exporter-otlp-proto-%s: pip install it", package)
                continue
            out.append(OTLPSpanExporter())
        else:
            log.warning("OTEL_TRACES_EXPORTER=%s is not supported by rlmx (otlp, console, none)", name)
    return out


def observer_from_env() -> SpanObserver | None:
    """The observer the ``OTEL_*`` variables ask for, or None (``OTEL_SDK_DISABLED=true``,
    no exporter, or OpenTelemetry not installed: logged). When no tracer provider is set
    yet, an SDK one is made (resource from ``OTEL_SERVICE_NAME``/``OTEL_RESOURCE_ATTRIBUTES``,
    service name ``rlmx`` by default) with a batch processor per exporter, and set globally."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    try:
        trace = _otel()
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider as SDKProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except (ConfigError, ImportError):
        log.warning("OTEL_* variables are set but OpenTelemetry is not installed: %s", _INSTALL)
        return None
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider):  # nobody configured one: do it from OTEL_*
        exporters = _exporters(os.environ.get("OTEL_TRACES_EXPORTER", "otlp"))
        if not exporters:
            return None
        attrs = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": "rlmx"}
        sdk = SDKProvider(resource=Resource.create(attrs))
        for exporter in exporters:
            sdk.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(sdk)
        provider = sdk
    from .. import __version__

    return SpanObserver(provider.get_tracer("rlmx", __version__), capture_content=capture_content_from_env())
