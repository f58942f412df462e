"""The official ``rlms`` library's way to end a run, accepted beside ``FINAL``/``FINAL_VAR``/``SUBMIT``.

Its newest releases seed the REPL with ``answer = {"content": "", "ready": False}``; model
code ends the run with ``answer["content"] = text`` and ``answer["ready"] = True``. The REPL
worker (:mod:`rlmx.sandbox.worker`) seeds the same dict as an injected name (so it is not
listed among the code's variables nor snapshotted while untouched) and, after each step,
asks :func:`take_final`: when ``answer`` is a dict whose ``"ready"`` is truthy, the step
ends the execution like ``FINAL(str(answer["content"]))`` (an error later in the same step
is dropped, as for ``FINAL``), and ``"ready"`` is set back to ``False`` so a REPL that lives
on (runtime mode) does not end again on the same dict. The default root prompt does not
mention ``answer``; the compat layer's prompt (:mod:`rlmx.compat.rlms`) does
(docs/compat.md). Imports nothing beyond the standard library (it runs in the REPL).
"""

from __future__ import annotations

from typing import Any

__all__ = ["ANSWER_NAME", "seed", "take_final"]

ANSWER_NAME = "answer"


def seed() -> dict[str, Any]:
    """The names to inject into a fresh REPL namespace: ``{"answer": {"content": "", "ready": False}}``."""
    return {ANSWER_NAME: {"content": "", "ready": False}}


def take_final(ns: dict[str, Any]) -> dict[str, Any] | None:
    """A FinalSignal dict (``kind`` FINAL, ``answer`` the content as ``str``) when
    ``ns["answer"]`` is a dict with a truthy ``"ready"``, else None. Consumes the signal
    (``"ready"`` becomes False). Never raises."""
    box = ns.get(ANSWER_NAME)
    if not isinstance(box, dict):
        return None
    try:
        if not box.get("ready"):
            return None
        content = box.get("content", "")
        text = content if isinstance(content, str) else str(content)
        box["ready"] = False
    except Exception:  # a dict subclass of the code's own that misbehaves: not an answer
        return None
    return {"kind": "FINAL", "answer": text, "citations": None, "fields": None}
