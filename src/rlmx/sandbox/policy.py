"""Sandbox settings: :class:`SandboxPolicy` (environment prefix ``RLMX_SANDBOX_``).

Units: MB (2**20 bytes), seconds. Every layer is on by default; a layer the host cannot
provide is skipped with a warning (``rlmx doctor`` says which and why) unless ``hardened``
is set, in which case a REPL missing one of ``required_layers`` refuses to start.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEFAULT_REQUIRED", "SandboxPolicy", "layer_failures", "warn_missing"]

DEFAULT_REQUIRED = ["rlimits", "uid", "caps", "no_new_privs", "netns", "landlock", "seccomp"]

log = logging.getLogger("rlmx.sandbox")
_warned: set[tuple[str, str]] = set()


class SandboxPolicy(BaseSettings):
    """How REPL processes are isolated and limited.

    * ``runner`` — ``local`` (forked from a pre-warmed zygote, layers applied in-process)
      or ``bwrap`` (bubblewrap namespaces + the same in-process layers).
    * ``hardened`` — refuse to start a REPL when a layer of ``required_layers`` is missing.
    * ``memory_mb`` (address space above the interpreter and the mapped corpus; cgroup
      memory), ``cpu_s`` (CPU seconds per step; default: the step's wall-clock limit),
      ``open_files``, ``workspace_mb`` (quota of the per-execution workspace; also the
      largest file), ``threads`` (per REPL, with a dedicated uid), ``pids`` (cgroup tasks),
      ``max_subcalls_per_step``.
    * ``netns``, ``landlock``, ``seccomp``, ``cgroup``, ``uid_switch`` — turn a layer off.
      ``uid_base``/``uid_count`` — the uids given to REPLs when started as root.
    * ``ast_guard`` — reject obviously forbidden code before running it.
    * ``snapshots``, ``snapshot_max_mb`` — save the namespace after every step;
      ``snapshot_key`` — HMAC key sealing stored snapshots (random per process when unset:
      set it to resume executions in another process).
    * ``zygote`` — fork REPLs from the pre-warmed zygote (else start a new interpreter).
    """

    model_config = SettingsConfigDict(env_prefix="RLMX_SANDBOX_", extra="ignore")

    runner: Literal["local", "bwrap"] = "local"
    hardened: bool = False
    required_layers: list[str] = Field(default_factory=lambda: list(DEFAULT_REQUIRED))
    memory_mb: int = 2048
    cpu_s: float | None = None
    open_files: int = 256
    workspace_mb: int = 512
    threads: int = 64
    pids: int = 128
    max_subcalls_per_step: int | None = 1000
    netns: bool = True
    landlock: bool = True
    seccomp: bool = True
    cgroup: bool = True
    uid_switch: bool = True
    uid_base: int = 3_100_000
    uid_count: int = 60_000
    ast_guard: bool = True
    snapshots: bool = True
    snapshot_max_mb: int = 256
    snapshot_key: SecretStr | None = None
    zygote: bool = True
    bwrap_path: str = "bwrap"

    def worker_config(self, workspace: str, uid: int | None, cpu_s: float | None) -> dict[str, Any]:
        """The ``sandbox`` part of the REPL's init message (see :mod:`._layers`)."""
        return {
            "workspace": workspace,
            "launcher_root": is_root(),  # RLIMIT_NPROC: a host root ignores it (see _layers)
            "uid": uid,
            "gid": uid,
            "uid_switch": self.uid_switch,
            "netns": self.netns,
            "landlock": self.landlock,
            "seccomp": self.seccomp,
            "hardened": self.hardened,
            "required": list(self.required_layers),
            "limits": {
                "memory_bytes": self.memory_mb << 20,
                "open_files": self.open_files,
                "file_size_bytes": self.workspace_mb << 20,
                "threads": self.threads,
                "cpu_s": cpu_s,
            },
        }

    def cgroup_memory_bytes(self) -> int:
        """The cgroup memory limit: the address-space budget plus the interpreter."""
        return (self.memory_mb + 256) << 20


def warn_missing(layers: dict[str, Any], runner: str) -> list[str]:
    """Log (once per process and reason) each layer that is not active; returns them."""
    missing = []
    for name, st in layers.items():
        if st.get("active"):
            continue
        detail = str(st.get("detail"))
        missing.append(f"{name}: {detail}")
        if detail.startswith("disabled by the sandbox policy"):
            continue
        key = (name, detail)
        if key not in _warned:
            _warned.add(key)
            log.warning("sandbox layer %s is not active (%s runner): %s; see `rlmx doctor`", name, runner, detail)
    return missing


def layer_failures(layers: dict[str, Any]) -> list[str]:
    """The layers of a REPL's report (``{layer: {"active", "detail"}}``) that the host or this
    execution's corpus failed to provide — not those the policy turned off — as
    ``"layer: detail"`` strings, in report order; ``[]`` when every wanted layer is active."""
    return [
        f"{name}: {st.get('detail')}"
        for name, st in layers.items()
        if not st.get("active") and not str(st.get("detail")).startswith("disabled by the sandbox policy")
    ]


def is_root() -> bool:
    return sys.platform.startswith("linux") and os.geteuid() == 0
