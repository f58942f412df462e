"""The engine's side of the sandbox: the default REPL factory, the key that seals stored
REPL snapshots (shared by every process of a store), where snapshots are stored, and the
warning when a REPL runs without a layer the policy wants."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import RlmxError
from ..sandbox.base import REPL, ContextSpec
from ..sandbox.policy import layer_failures
from ..store.base import BlobStore
from ..store.secrets import shared_secret

if TYPE_CHECKING:
    from .state import EngineOptions

__all__ = [
    "MAX_STORED_SNAPSHOT_BYTES",
    "load_snapshot",
    "local_repl",
    "save_snapshot",
    "shared_snapshot_key",
    "snapshot_key",
    "warn_sandbox",
]

_sandbox_log = logging.getLogger("rlmx.sandbox")

MAX_STORED_SNAPSHOT_BYTES = 64 << 20
"""Snapshots larger than this (bytes) are not stored: resume then replays the committed turns."""


def snapshot_key(execution_id: str, turn: int) -> str:
    """Blob key of an execution's sealed REPL snapshot after ``turn``."""
    return f"snapshots/{execution_id}/{turn}.snap"


def shared_snapshot_key(home: Path, blobs: BlobStore | None = None) -> bytes | None:
    """The key that seals stored REPL snapshots, shared by every process of this store:
    ``RLMX_SANDBOX_SNAPSHOT_KEY`` when set (the sandbox policy reads it), else the blob
    ``secrets/snapshot_key`` of a remote blob store, else the file ``$RLMX_HOME/snapshot_key``
    (mode 0600); created atomically on first use (:func:`rlmx.store.secrets.shared_secret`)."""
    if os.environ.get("RLMX_SANDBOX_SNAPSHOT_KEY"):
        return None
    path = home / "snapshot_key"
    key = shared_secret(blobs, "snapshot_key", path)
    if len(key) < 32:
        raise RlmxError(f"{path} holds no usable key: delete it (snapshots sealed with it become unusable)")
    return key


def warn_sandbox(tree: Any, execution_id: str, depth: int, repl: REPL) -> None:
    """A REPL started without a layer the policy wants (a host or corpus limit): a WARNING
    naming the execution and an ``sandbox_warning`` event; every turn record then holds the
    failures under ``sandbox_warnings`` (the trace). Hardened mode never gets here: the
    REPL refuses to start."""
    failures = layer_failures(getattr(repl, "layers", None) or {})
    if not failures:
        return
    _sandbox_log.warning(
        "execution %s runs WITHOUT sandbox layer(s): %s; fix the host (see `rlmx doctor --corpus PATH`) "
        "or set RLMX_SANDBOX_HARDENED=1 to refuse such executions",
        execution_id,
        "; ".join(failures),
    )
    tree.emit("sandbox_warning", execution_id=execution_id, depth=depth, layers=failures)


def local_repl(
    spec: ContextSpec,
    options: EngineOptions,
    schema_fields: list[str] | None,
    *,
    snapshot: Any = None,
    key: bytes | None = None,
) -> REPL:
    """The default REPL (the sandbox policy's runner) over ``spec``, started from
    ``snapshot`` when given, its snapshots sealed with ``key`` (the store's shared key)
    unless ``RLMX_SANDBOX_SNAPSHOT_KEY`` names one."""
    from pydantic import SecretStr

    from ..sandbox import SandboxPolicy, make_repl

    policy = SandboxPolicy()
    if key is not None and policy.snapshot_key is None:
        policy = policy.model_copy(update={"snapshot_key": SecretStr(key.decode())})
    return make_repl(
        spec,
        policy=policy,
        step_timeout_s=options.step_timeout_s,
        output_cap_chars=options.repl_output_cap_chars,
        schema_fields=schema_fields,
        snapshot=snapshot,
    )


def save_snapshot(blobs: BlobStore, execution_id: str, turn: int, repl: REPL) -> None:
    """Store ``repl``'s sealed snapshot of ``turn`` as opaque bytes (never unpickled here)
    under ``snapshots/<execution>/<turn>.snap``, created only if absent (a conditional put:
    an attempt that lost its job cannot overwrite the snapshot of the attempt that took it
    over), then drop the previous turn's; skipped above :data:`MAX_STORED_SNAPSHOT_BYTES`
    (resume then replays the committed turns). Blocking I/O: the loop calls it in a thread."""
    snap = getattr(repl, "snapshot", None)
    if snap is not None and snap.turn == turn and snap.size <= MAX_STORED_SNAPSHOT_BYTES:
        blobs.put_if_absent(snapshot_key(execution_id, turn), snap.to_bytes())
    if turn > 1:
        blobs.delete(snapshot_key(execution_id, turn - 1))


def load_snapshot(blobs: BlobStore, execution_id: str, turn: int) -> Any:
    """The stored snapshot of ``execution_id`` at ``turn``, else None (blocking I/O)."""
    from ..errors import NotFoundError
    from ..sandbox.snapshot import Snapshot, SnapshotError

    if not turn:
        return None
    try:
        snap = Snapshot.from_bytes(blobs.get(snapshot_key(execution_id, turn)))
    except (NotFoundError, SnapshotError, ValueError):
        return None
    return snap if snap.turn == turn else None
