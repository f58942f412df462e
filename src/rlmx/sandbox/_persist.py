"""Snapshots of the REPL namespace, made and restored inside the REPL process.

After each step :meth:`Persister.delta` pickles every variable on its own (cloudpickle, so
functions and classes defined in the REPL are saved by value) and returns the ones whose
bytes changed since the last snapshot, the names deleted, and the names that could not be
saved with the reason. The orchestrator stores these bytes opaquely (it never unpickles them)
and sends them back to a fresh REPL process after a crash or to resume an execution:
:meth:`Persister.restore` unpickles them here, under every isolation layer.

Live objects are saved by reference: ``context``, its documents (``DocView``) and hits,
the REPL's tools (``llm_query``...) and the namespace itself; functions defined in the REPL
get the live namespace as their globals again. Limits: each variable is saved separately,
so two names bound to one mutable object become two copies after a restore; open files,
threads, generators, locks and the like cannot be saved and are named to the model.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import types
from typing import Any

import cloudpickle

from .context import _Context
from .docview import DocView, Hit

__all__ = ["Persister"]

_IMMUTABLE = (int, float, complex, str, bytes, bool, type(None), range, frozenset)
_TARGET: list[dict[str, Any]] = [{}]  # the namespace being restored into


def _make_function(
    code: types.CodeType,
    name: str,
    defaults: Any,
    closure: Any,
    kwdefaults: Any,
    qualname: str,
    fdict: Any,
    annotations: Any,
    doc: Any,
) -> types.FunctionType:
    """A function of the REPL, bound to the live namespace being restored."""
    f = types.FunctionType(code, _TARGET[0], name, defaults, closure)
    f.__kwdefaults__ = kwdefaults
    f.__qualname__ = qualname
    f.__annotations__ = annotations or {}
    f.__doc__ = doc
    f.__module__ = "__repl__"
    if fdict:
        f.__dict__.update(fdict)
    return f


class _Pickler(cloudpickle.Pickler):
    def __init__(self, file: io.BytesIO, owner: Persister) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._owner = owner

    def persistent_id(self, obj: Any) -> Any:
        o = self._owner
        if obj is o.ns:
            return ("ns",)
        if obj is o.context:
            return ("context",)
        if isinstance(obj, DocView):
            return ("doc", obj.id, obj._lo, obj._hi)
        if isinstance(obj, Hit):
            return ("hit", obj.doc.id, obj.doc._lo, obj.doc._hi, obj.start, obj.end, obj.score)
        if isinstance(obj, _Context):
            return ("ctx",)
        name = o.tool_ids.get(id(obj))
        if name is not None:
            return ("tool", name)
        return None

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, types.FunctionType) and obj.__globals__ is self._owner.ns:
            return _make_function, (
                obj.__code__,
                obj.__name__,
                obj.__defaults__,
                obj.__closure__,
                obj.__kwdefaults__,
                obj.__qualname__,
                obj.__dict__ or None,
                obj.__annotations__ or None,
                obj.__doc__,
            )
        return super().reducer_override(obj)


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, owner: Persister) -> None:
        super().__init__(file)
        self._owner = owner

    def persistent_load(self, pid: Any) -> Any:
        o = self._owner
        kind = pid[0]
        if kind == "ns":
            return o.ns
        if kind == "context":
            return o.context
        if kind == "ctx":
            return o.ctx
        if kind == "tool":
            return o.tools[pid[1]]
        if kind in ("doc", "hit"):
            src = next((v._src for v in o.ctx.views if v.id == pid[1]), None)
            if src is None:
                raise pickle.UnpicklingError(f"document {pid[1]} is not in this context")
            view = DocView(src, int(pid[2]), int(pid[3]), o.ctx)
            return view if kind == "doc" else Hit(view, int(pid[4]), int(pid[5]), pid[6])
        raise pickle.UnpicklingError(f"unknown reference {kind!r}")


def _reason(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}"
    return text if len(text) <= 160 else text[:157] + "..."


class Persister:
    """Per-variable snapshots of ``ns`` (see module doc). ``tools``: the injected names."""

    def __init__(self, ns: dict[str, Any], context: Any, ctx: _Context, tools: dict[str, Any], max_bytes: int) -> None:
        self.ns = ns
        self.context = context
        self.ctx = ctx
        self.tools = tools
        self.tool_ids = {id(v): k for k, v in tools.items() if k != "context"}
        self.max_bytes = max_bytes
        self._digest: dict[str, bytes] = {}
        self._size: dict[str, int] = {}  # bytes of each saved variable
        self._same: dict[str, Any] = {}  # immutable values already saved, by identity

    def dumps(self, value: Any) -> bytes:
        buf = io.BytesIO()
        _Pickler(buf, self).dump(value)
        return buf.getvalue()

    def loads(self, data: bytes) -> Any:
        _TARGET[0] = self.ns
        return _Unpickler(io.BytesIO(data), self).load()

    def _names(self) -> list[str]:
        return [
            k
            for k, v in self.ns.items()
            if not (k.startswith("__") and k.endswith("__")) and not (k in self.tools and self.tools[k] is v)
        ]

    def delta(self) -> tuple[dict[str, Any], list[bytes]]:
        """``(meta, blobs)``: meta ``{"changed": [[name, size]...], "deleted": [...],
        "unsaved": {name: reason}}``; ``blobs`` the changed variables' bytes, in order. The
        saved variables together (unchanged ones included) stay within ``max_bytes``: the
        orchestrator refuses a snapshot that grows past it."""
        changed: list[list[Any]] = []
        blobs: list[bytes] = []
        unsaved: dict[str, str] = {}
        total = 0
        names = self._names()
        for name in names:
            value = self.ns[name]
            if name in self._same and self._same[name] is value and total + self._size.get(name, 0) <= self.max_bytes:
                total += self._size.get(name, 0)
                continue  # saved already (past the limit now: saved again below, and refused)
            try:
                data = self.dumps(value)
            except BaseException as e:  # the value's own code may raise anything
                unsaved[name] = _reason(e)
                continue
            total += len(data)
            if total > self.max_bytes:
                unsaved[name] = f"too large to save ({len(data):,} bytes; snapshot limit {self.max_bytes:,} bytes)"
                total -= len(data)
                continue
            digest = hashlib.blake2b(data, digest_size=16).digest()
            if isinstance(value, _IMMUTABLE):
                self._same[name] = value
            else:
                self._same.pop(name, None)
            self._size[name] = len(data)
            if self._digest.get(name) != digest:
                self._digest[name] = digest
                changed.append([name, len(data)])
                blobs.append(data)
        live = set(names) - set(unsaved)
        deleted = [n for n in self._digest if n not in live]
        for n in deleted:
            self._digest.pop(n, None)
            self._size.pop(n, None)
            self._same.pop(n, None)
        return {"changed": changed, "deleted": deleted, "unsaved": unsaved}, blobs

    def restore(self, items: list[tuple[str, bytes]]) -> tuple[list[str], dict[str, str]]:
        """Unpickle ``(name, bytes)`` items into the namespace. Returns ``(restored,
        {name: reason})``."""
        restored: list[str] = []
        failed: dict[str, str] = {}
        for name, data in items:
            try:
                self.ns[name] = self.loads(data)
            except BaseException as e:  # the pickle's own code may raise anything
                failed[name] = _reason(e)
                continue
            self._digest[name] = hashlib.blake2b(data, digest_size=16).digest()
            restored.append(name)
        return restored, failed
