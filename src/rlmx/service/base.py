"""The state every part of :class:`~rlmx.service.core.Service` shares: settings, the store,
API keys, the models offered, the live runtime REPLs, and the wakers of in-process workers;
with the models and leases every operation uses."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import weakref
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from ..api import RLM
from ..config import Settings
from ..engine.runtime import RuntimeExecution
from ..engine.tools import ToolRegistry, load_tool
from ..errors import ConfigError, RlmxError
from ..lm.registry import resolve_models
from ..queue import WorkQueue, open_queue
from ..store import Store, open_store
from ..types import Budgets, Status
from .auth import KeyManager, load_pepper
from .errors import BadRequest, Unavailable
from .settings import ServiceSettings

__all__ = ["TERMINAL", "ServiceBase"]

TERMINAL = {s.value for s in Status} - {Status.RUNNING.value}

log = logging.getLogger("rlmx.service")


class ServiceBase:
    """Sessions, executions (answerer and runtime), spans and citations for tenants, over
    one :class:`~rlmx.store.Store`. ``notice(message)`` receives one-line notices (e.g. a
    generated pepper)."""

    def __init__(
        self,
        settings: ServiceSettings | None = None,
        store: Store | None = None,
        *,
        notice: Callable[[str], None] | None = None,
    ):
        self.settings = settings or ServiceSettings()
        self.store = store or open_store(self.settings.home, migrate=True)
        self.meta = self.store.meta
        self.keys = KeyManager(self.meta, load_pepper(self.settings, notice, blobs=self.store.blobs))
        self.engine_settings = Settings(home=self.store.home)
        root, sub, _ = resolve_models(None, None, settings=self.engine_settings)
        self.default_models = (root, sub)
        extra = [m.strip() for m in self.settings.service_models.split(",") if m.strip()]
        self.offered = list(dict.fromkeys([root, sub, "baseline", *extra]))
        tools = [load_tool(t.strip()) for t in self.settings.service_tools.split(",") if t.strip()]
        self.tools = ToolRegistry(tools, timeout_s=self.settings.tool_timeout_seconds) if tools else None
        """The operator's custom tools (``RLMX_SERVICE_TOOLS``), given to every execution."""
        self.runtimes: dict[str, RuntimeExecution] = {}
        self._runtime_slots: dict[str, str] = {}  # execution id -> tenant, REPLs live or starting
        self._runtime_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        """Execution id -> the lock that serialises this server's requests of that runtime
        execution; an entry lives while a request holds or awaits its lock (weak values), so
        a server that served many runtime executions keeps no lock per execution it served."""
        self._step_leases: dict[str, Any] = {}  # execution id -> runtimes.StepLease this server holds
        self.server_id = f"api:{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        """This process's name in step leases of runtime executions."""
        self.queue: WorkQueue = open_queue(
            self.meta, lease_s=self.settings.lease_seconds, poll_s=self.settings.poll_seconds
        )
        self.queue.ensure_schema()

    def close(self) -> None:
        self.queue.close()
        self.store.close()

    # -- models ---------------------------------------------------------------------------------
    def resolve_models(self, models: dict[str, Any] | None) -> dict[str, str]:
        """``{"root", "sub"}`` specs for a request; each must be offered by this server
        (``RLMX_SERVICE_MODELS``, the default pair, ``baseline``), else BadRequest."""
        models = models or {}
        root = models.get("root") or None
        sub = models.get("sub") or None
        if root is None and sub is None:
            root, sub = self.default_models
        elif root is None:
            root = self.default_models[0]
        try:
            root, sub, _ = resolve_models(root, sub, settings=self.engine_settings)
        except ConfigError as e:
            raise BadRequest(str(e)) from None
        for spec in (root, sub):
            if spec not in self.offered:
                raise BadRequest(f"model {spec!r} is not offered by this server; offered: {self.offered}")
        return {"root": root, "sub": sub}

    def make_rlm(
        self,
        models: dict[str, Any] | None,
        budgets: dict[str, Any] | None,
        *,
        tenant: str,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
        store: Store | None = None,
    ) -> RLM:
        """An :class:`~rlmx.api.RLM` for a request of ``tenant`` (models checked by
        :meth:`resolve_models`) on ``store`` (default: the service's). Its LLM cache is the
        tenant's own (namespace ``"tenant:<tenant>"``) unless ``RLMX_SHARED_LLM_CACHE``."""
        specs = self.resolve_models(models)
        root, sub = specs["root"], specs["sub"]
        try:
            checked = Budgets.model_validate(budgets or {})
        except ValidationError as e:
            raise BadRequest(f"invalid budgets: {e}") from None
        kwargs: dict[str, Any] = {
            "model": root,
            "sub_model": sub,
            "settings": self.engine_settings,
            "on_event": on_event,
            "notice": lambda _m: None,
            "cache_namespace": "" if self.settings.shared_llm_cache else f"tenant:{tenant}",
            "tools": self.tools,
        }
        try:
            rlm = RLM(budgets=checked, **kwargs)
        except ConfigError as e:
            if checked.max_cost_usd is not None and self._builds(checked, kwargs):
                raise BadRequest(str(e)) from None  # the cost budget needs a price this server lacks
            # the server's own configuration (a provider key, a price file): not the client's to fix
            log.error("model %s / %s is offered but cannot be used: %s", root, sub, e)
            raise Unavailable(
                f"the models {root!r} / {sub!r} are offered but not usable on this server right now (a "
                "server configuration problem, logged for its operator); retry later or ask for other models"
            ) from None
        rlm._store = store or self.store
        return rlm

    @staticmethod
    def _builds(budgets: Budgets, kwargs: dict[str, Any]) -> bool:
        """Whether the RLM builds without the cost budget (so that budget alone failed)."""
        try:
            RLM(budgets=budgets.model_copy(update={"max_cost_usd": None}), **kwargs)
        except ConfigError:
            return False
        return True

    # -- leases -----------------------------------------------------------------------------
    def _forget_runtime(self, execution_id: str) -> RuntimeExecution | None:
        self._runtime_slots.pop(execution_id, None)
        return self.runtimes.pop(execution_id, None)

    # -- health ---------------------------------------------------------------------------------
    def ready(self) -> bool:
        try:
            self.meta.get_job("__ready__")
        except RlmxError:
            return False
        return True
