"""Settings of the service (prefix ``RLMX_``; see ``docs/service.md``).

* ``RLMX_ALLOWED_PATHS`` — ``:``-separated server folders that ``POST /v1/sessions`` may read
  documents from (empty by default: only uploads).
* ``RLMX_KEY_PEPPER`` — the secret HMAC key of API keys; when unset, one is generated and
  kept in ``$RLMX_HOME/key_pepper`` (mode 0600).
* ``RLMX_SERVICE_MODELS`` — ``,``-separated model specs clients may ask for, besides the
  server's default pair and ``baseline``.
* ``RLMX_RATE_LIMIT_PER_MINUTE`` — requests per API key per minute (429 beyond), counted in
  the metadata database, so the limit holds across all API servers (a fixed window per key).
* ``RLMX_MAX_REQUEST_BYTES`` / ``RLMX_MAX_UPLOAD_BYTES`` — body limits (413 beyond).
* ``RLMX_LEASE_SECONDS`` — a worker's lease on a job; a killed worker's job is taken over
  after this long. ``RLMX_POLL_SECONDS`` — how often an idle worker looks for work.
* ``RLMX_WORKER_CONCURRENCY`` — jobs one worker runs at once.
* ``RLMX_PUBLIC_DOCS`` — serve ``/docs`` and ``/openapi.json`` without a key (default true).
* ``RLMX_RUNTIME_IDLE_SECONDS`` — a runtime execution's REPL idle this long is stopped (it
  is restored on the next request).
* ``RLMX_MAX_RUNTIMES`` / ``RLMX_MAX_RUNTIMES_PER_TENANT`` — runtime executions with a live
  REPL in one serving process, in all and per tenant (429 beyond).
* ``RLMX_SHARED_LLM_CACHE`` — share the LLM cache between tenants (default false: a cached
  response is reused only within the tenant that paid for it, so a sub-call's ``cached`` flag
  never tells tenant B what tenant A asked). Opt in only when all tenants trust each other.
* ``RLMX_SERVICE_TOOLS`` — ``,``-separated ``MODULE:FUNCTION`` custom tools the operator
  exposes to model code of every execution (docs/repl.md; they run in the serving process,
  API server or worker). ``RLMX_TOOL_TIMEOUT_SECONDS`` — seconds per tool call (default 60).
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from ..config import EnvSettings, default_home

__all__ = ["ServiceSettings"]


class ServiceSettings(EnvSettings):
    """See the module doc. Units: seconds, bytes."""

    model_config = SettingsConfigDict(env_prefix="RLMX_", extra="ignore")

    home: Path = Field(default_factory=default_home)
    allowed_paths: str = ""
    key_pepper: SecretStr | None = None
    service_models: str = ""
    rate_limit_per_minute: int = Field(default=600, ge=1)
    max_request_bytes: int = Field(default=1 << 20, ge=1024)
    max_upload_bytes: int = Field(default=64 << 20, ge=1024)
    lease_seconds: float = Field(default=30.0, gt=0)
    poll_seconds: float = Field(default=0.5, gt=0)
    worker_concurrency: int = Field(default=4, ge=1)
    public_docs: bool = True
    runtime_idle_seconds: float = Field(default=900.0, gt=0)
    max_runtimes: int = Field(default=32, ge=1)
    max_runtimes_per_tenant: int = Field(default=8, ge=1)
    events_poll_seconds: float = Field(default=0.25, gt=0)
    shared_llm_cache: bool = False
    service_tools: str = ""
    tool_timeout_seconds: float = Field(default=60.0, gt=0)

    def allowed_roots(self) -> list[Path]:
        """The allowed folders, each as written (absolute) and resolved (symlinks followed), so
        a path is checked lexically and after resolution against the matching form; empty
        entries ignored."""
        roots: list[Path] = []
        for p in self.allowed_paths.split(":"):
            if p.strip():
                given = Path(p).expanduser()
                roots += [Path(os.path.abspath(given)), given.resolve()]
        return list(dict.fromkeys(roots))
