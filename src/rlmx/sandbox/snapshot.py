"""Sealed REPL snapshots, kept by the orchestrator as opaque bytes.

The REPL process pickles its namespace itself (:mod:`rlmx.sandbox._persist`); the
orchestrator only stores the bytes it receives, seals them with an HMAC-SHA256 under a key
the sandbox never sees, and sends them back to a fresh REPL process. It never unpickles
them. "Tampered" therefore means: bytes that changed after the orchestrator sealed them (in
memory, in a blob store, in transit) — :meth:`Sealer.verify` refuses such a snapshot and the
REPL starts empty, saying so. Bytes that the model crafted inside its own sandbox are sealed
as they are and restored inside a sandbox again, under every layer, where unpickling them can
do no more than the model's code itself could.

:class:`Snapshot` is the unit to persist (``to_bytes``/``from_bytes``) for resuming an
execution in another process; give both processes the same ``RLMX_SANDBOX_SNAPSHOT_KEY``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass, field

__all__ = ["Sealer", "Snapshot", "SnapshotError"]

_PROCESS_KEY = os.urandom(32)
_MAGIC = b"rlmx-snapshot-1\n"


class SnapshotError(ValueError):
    """A snapshot is malformed or failed its integrity check."""


@dataclass
class Snapshot:
    """The REPL namespace after step ``turn``: ``vars`` maps each saved variable to its
    pickled bytes (opaque here), ``macs`` to their seals; ``unsaved`` names what could not
    be saved and why; ``mac`` seals the whole (``"hmac-sha256:" + hex``)."""

    turn: int
    vars: dict[str, bytes] = field(default_factory=dict)
    macs: dict[str, str] = field(default_factory=dict)
    unsaved: dict[str, str] = field(default_factory=dict)
    mac: str = ""

    @property
    def size(self) -> int:
        return sum(len(v) for v in self.vars.values())

    def to_bytes(self) -> bytes:
        names = sorted(self.vars)
        head = {
            "turn": self.turn,
            "vars": [[n, len(self.vars[n]), self.macs.get(n, "")] for n in names],
            "unsaved": self.unsaved,
            "mac": self.mac,
        }
        return _MAGIC + json.dumps(head).encode() + b"\n" + b"".join(self.vars[n] for n in names)

    @classmethod
    def from_bytes(cls, data: bytes) -> Snapshot:
        """Parse :meth:`to_bytes` output (not verified: see :meth:`Sealer.verify`)."""
        if not data.startswith(_MAGIC):
            raise SnapshotError("not an rlmx snapshot")
        nl = data.index(b"\n", len(_MAGIC))
        try:
            head = json.loads(data[len(_MAGIC) : nl])
            snap = cls(turn=int(head["turn"]), unsaved=dict(head.get("unsaved") or {}), mac=str(head["mac"]))
            pos = nl + 1
            for name, size, mac in head["vars"]:
                snap.vars[str(name)] = data[pos : pos + int(size)]
                snap.macs[str(name)] = str(mac)
                pos += int(size)
        except (KeyError, TypeError, ValueError) as e:
            raise SnapshotError(f"malformed snapshot: {e}") from None
        if pos != len(data):
            raise SnapshotError("malformed snapshot: wrong length")
        return snap


class Sealer:
    """Seals and verifies snapshots with HMAC-SHA256 under ``key`` (default: a random key of
    this process)."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or _PROCESS_KEY

    def _var_mac(self, name: str, data: bytes) -> str:
        return hmac.new(self._key, b"var\0" + name.encode() + b"\0" + data, hashlib.sha256).hexdigest()

    def _manifest(self, snap: Snapshot) -> str:
        body = json.dumps(
            {"turn": snap.turn, "vars": sorted(snap.macs.items()), "unsaved": sorted(snap.unsaved.items())}
        ).encode()
        return "hmac-sha256:" + hmac.new(self._key, b"manifest\0" + body, hashlib.sha256).hexdigest()

    def apply(
        self,
        base: Snapshot | None,
        turn: int,
        changed: list[tuple[str, bytes]],
        deleted: list[str],
        unsaved: dict[str, str],
    ) -> Snapshot:
        """A new sealed snapshot: ``base`` with the step's changes (``base`` is unchanged)."""
        snap = Snapshot(turn=turn)
        if base is not None:
            snap.vars = dict(base.vars)
            snap.macs = dict(base.macs)
        for name in deleted:
            snap.vars.pop(name, None)
            snap.macs.pop(name, None)
        for name, data in changed:
            snap.vars[name] = data
            snap.macs[name] = self._var_mac(name, data)
        snap.unsaved = dict(unsaved)
        snap.mac = self._manifest(snap)
        return snap

    def verify(self, snap: Snapshot) -> None:
        """Raise :class:`SnapshotError` unless every byte is as this sealer sealed it."""
        if set(snap.vars) != set(snap.macs):
            raise SnapshotError("the snapshot's variables do not match its seals")
        if not hmac.compare_digest(snap.mac, self._manifest(snap)):
            raise SnapshotError("the snapshot's seal does not match (tampered, or sealed with another key)")
        for name, data in snap.vars.items():
            if not hmac.compare_digest(snap.macs[name], self._var_mac(name, data)):
                raise SnapshotError(f"variable {name!r} of the snapshot was modified after it was sealed")
