"""Service metrics in the Prometheus text format (issue 12 item 3): ``GET /metrics``.

Opt-in: served only with ``RLMX_METRICS=1``, and then without an API key (a scraper has
none), so no metric carries tenant data — no tenant, key, session, execution or document
id, no question or path; labels are statuses, kinds, roles and model specs only.

Counters and histograms are updated from the engine's events
(:mod:`rlmx.engine.observers`), so they count what ran in this process (an API server with
its in-process worker; a separate ``rlmx worker`` serves its own with ``--metrics-port``):
sum them over the servers and workers. Gauges read the store when scraped, so they hold for the whole
deployment: ``rlmx_queue_depth`` (jobs waiting) and ``rlmx_jobs_running``, by kind.

| metric | type | labels |
|---|---|---|
| ``rlmx_executions_started_total`` | counter | ``level`` (root, child) |
| ``rlmx_executions_total`` (finished) | counter | ``status``, ``level`` |
| ``rlmx_turns_total`` | counter | ``level`` |
| ``rlmx_subcalls_total`` | counter | ``kind`` (llm_query, llm_query_batched, rlm_query) |
| ``rlmx_lm_calls_total`` | counter | ``model``, ``role`` (root, sub) |
| ``rlmx_lm_cache_hits_total`` | counter | ``model``, ``role`` |
| ``rlmx_lm_tokens_total`` | counter | ``model``, ``direction`` (input, output) |
| ``rlmx_lm_cost_usd_total`` | counter | ``model`` (calls with a known price) |
| ``rlmx_lm_unpriced_calls_total`` | counter | ``model`` (cost unknown) |
| ``rlmx_root_lm_seconds``, ``rlmx_step_seconds`` | histogram | |
| ``rlmx_subcall_seconds`` | histogram | ``kind`` |
| ``rlmx_ingested_documents_total``, ``rlmx_ingested_characters_total`` | counter | |
| ``rlmx_ingest_failed_documents_total`` | counter | |
| ``rlmx_ingest_seconds`` | histogram | |
| ``rlmx_queue_depth``, ``rlmx_jobs_running`` | gauge | ``kind`` (ingest, answerer) |
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic_settings import SettingsConfigDict

from ..config import EnvSettings
from ..store.base import MetadataStore

__all__ = ["CONTENT_TYPE", "Metrics", "MetricsSettings", "mount"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
log = logging.getLogger("rlmx.service")

_SECONDS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class MetricsSettings(EnvSettings):
    """``RLMX_METRICS`` — serve ``GET /metrics`` (default false)."""

    model_config = SettingsConfigDict(env_prefix="RLMX_", extra="ignore")

    metrics: bool = False


class _Jobs(Collector):
    """Queue gauges read from the ``jobs`` table when scraped (blocking I/O: the route runs
    in a thread)."""

    def __init__(self, meta: MetadataStore):
        self.meta = meta

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from sqlalchemy import func, select

        from ..store.schema import jobs

        waiting = GaugeMetricFamily("rlmx_queue_depth", "Jobs waiting for a worker.", labels=["kind"])
        running = GaugeMetricFamily("rlmx_jobs_running", "Jobs a worker holds.", labels=["kind"])
        try:
            q = select(jobs.c.state, jobs.c.kind, func.count()).group_by(jobs.c.state, jobs.c.kind)
            with self.meta.engine.connect() as conn:  # type: ignore[attr-defined]
                rows = [(str(state), str(kind), int(n)) for state, kind, n in conn.execute(q)]
        except Exception:  # a scrape must not fail with the store: the gauges are left out
            log.warning("metrics: could not read the jobs table", exc_info=True)
            return
        counts = {(state, kind): 0 for state in ("QUEUED", "RUNNING") for kind in ("ingest", "answerer")}
        counts.update({(state, kind): n for state, kind, n in rows})
        for (state, kind), n in sorted(counts.items()):
            if state == "QUEUED":
                waiting.add_metric([kind], n)
            elif state == "RUNNING":
                running.add_metric([kind], n)
        yield waiting
        yield running


class Metrics:
    """The metrics of one serving process: ``metrics(kind, data, content)`` is an observer
    of engine events (:func:`rlmx.engine.observers.add_observer`); :meth:`render` is the
    ``/metrics`` body. ``meta``: where the queue gauges are read (None: no gauges)."""

    def __init__(self, meta: MetadataStore | None = None):
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.started = Counter("rlmx_executions_started", "Executions started.", ["level"], registry=r)
        self.finished = Counter("rlmx_executions", "Executions finished, by status.", ["status", "level"], registry=r)
        self.turns = Counter("rlmx_turns", "Turns finished.", ["level"], registry=r)
        self.subcalls = Counter("rlmx_subcalls", "Sub-calls finished.", ["kind"], registry=r)
        self.calls = Counter("rlmx_lm_calls", "LM calls.", ["model", "role"], registry=r)
        self.hits = Counter("rlmx_lm_cache_hits", "LM calls answered by the LLM cache.", ["model", "role"], registry=r)
        self.tokens = Counter("rlmx_lm_tokens", "LM tokens (provider-reported).", ["model", "direction"], registry=r)
        self.cost = Counter("rlmx_lm_cost_usd", "LM cost in USD (known prices only).", ["model"], registry=r)
        self.unpriced = Counter("rlmx_lm_unpriced_calls", "LM calls with no known price.", ["model"], registry=r)
        self.root_s = Histogram("rlmx_root_lm_seconds", "Root-LM call latency.", buckets=_SECONDS, registry=r)
        self.step_s = Histogram("rlmx_step_seconds", "REPL step latency.", buckets=_SECONDS, registry=r)
        self.sub_s = Histogram("rlmx_subcall_seconds", "Sub-call latency.", ["kind"], buckets=_SECONDS, registry=r)
        self.docs = Counter("rlmx_ingested_documents", "Documents ingested.", registry=r)
        self.chars = Counter("rlmx_ingested_characters", "Characters of canonical text ingested.", registry=r)
        self.failed = Counter("rlmx_ingest_failed_documents", "Documents that failed to ingest.", registry=r)
        self.ingest_s = Histogram("rlmx_ingest_seconds", "Ingestion job duration.", buckets=_SECONDS, registry=r)
        if meta is not None:
            r.register(_Jobs(meta))

    def _lm(self, data: dict[str, Any], role: str) -> None:
        model = str(data.get("model") or "")
        if not model:
            return
        self.calls.labels(model, role).inc()
        if data.get("cached"):
            self.hits.labels(model, role).inc()
        self.tokens.labels(model, "input").inc(max(0, int(data.get("input_tokens") or 0)))
        self.tokens.labels(model, "output").inc(max(0, int(data.get("output_tokens") or 0)))
        cost = data.get("cost_usd")
        if cost is None:
            self.unpriced.labels(model).inc()
        else:
            self.cost.labels(model).inc(max(0.0, float(cost)))

    def __call__(self, kind: str, data: dict[str, Any], content: dict[str, Any] | None = None) -> None:
        level = "root" if int(data.get("depth") or 0) == 0 else "child"
        if kind == "execution_started":
            self.started.labels(level).inc()
        elif kind == "execution_finished":
            self.finished.labels(str(data.get("status")), level).inc()
        elif kind == "turn_finished":
            self.turns.labels(level).inc()
            if "model" in data:
                self.root_s.observe(float(data.get("root_s") or 0.0))
            self.step_s.observe(float(data.get("step_s") or 0.0))
            self._lm(data, "root")
        elif kind == "subcall":
            sub_kind = str(data.get("kind"))
            self.subcalls.labels(sub_kind).inc()
            self.sub_s.labels(sub_kind).observe(float(data.get("seconds") or 0.0))
            self._lm(data, "sub")
        elif kind == "ingest_finished":
            self.docs.inc(int(data.get("documents") or 0))
            self.chars.inc(int(data.get("characters") or 0))
            self.failed.inc(int(data.get("failed") or 0))
            self.ingest_s.observe(float(data.get("seconds") or 0.0))

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric (blocking: reads the store for the
        gauges)."""
        return generate_latest(self.registry)


def mount(app: FastAPI, meta: MetadataStore) -> Metrics | None:
    """With ``RLMX_METRICS=1``, ``GET /metrics`` on ``app`` (no API key; not in the OpenAPI
    schema) and the :class:`Metrics` it serves (the caller adds it as an observer while
    the app runs); else None and no route. Raises ``ConfigError`` for a malformed value."""
    if not MetricsSettings().metrics:
        return None
    metrics = Metrics(meta)

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:  # a plain def: FastAPI runs it in a thread
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    return metrics
