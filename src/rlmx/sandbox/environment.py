"""The REPL process's environment, built from scratch (DESIGN.md invariant 1): nothing of the
orchestrator's reaches it but ``PATH`` — no API key, no other variable. Used for REPL
processes started as new interpreters and for the zygote (:mod:`rlmx.sandbox.zygote`), whose
children set it again from their ``init`` message."""

from __future__ import annotations

import os
import site
from pathlib import Path

import rlmx

__all__ = ["child_env", "import_root"]


def import_root() -> str | None:
    """The directory to put on the child's ``PYTHONPATH``, or None when site-packages has rlmx."""
    root = Path(rlmx.__file__).resolve().parent.parent
    sites = {str(Path(p).resolve()) for p in site.getsitepackages()}
    return None if str(root) in sites else str(root)


def child_env(workspace: str) -> dict[str, str]:
    """The REPL process's whole environment for the workspace folder ``workspace`` (its
    ``HOME`` and ``TMPDIR``): ``PATH``, a UTF-8 locale, ``TZ=UTC``, Python flags, and
    ``PYTHONPATH`` only when rlmx is not importable from site-packages. Nothing else is
    inherited."""
    env = {
        "PATH": os.environ.get("PATH") or os.defpath,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
        "HOME": workspace,
        "TMPDIR": workspace,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "PYTHONIOENCODING": "utf-8",
    }
    root = import_root()
    if root:
        env["PYTHONPATH"] = root
    return env
