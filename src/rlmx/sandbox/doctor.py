"""``rlmx doctor``: which sandbox layers are active on this host, and why any is missing.

:func:`diagnose` starts a real REPL with the given policy (a one-document context of its
own, or with ``corpus`` the context an execution on those files would get), reads the layers
it reports, and runs probes inside it with the AST guard off — a socket, ``/etc/shadow``, a
fork, a write outside the workspace, a signal to its parent — so that the report shows what
the operating system actually refuses. It also says which runners and tools are installed.
:func:`render` formats the report as text.
"""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

from ..errors import RlmxError
from .base import ContextSpec, ToolRequest
from .policy import SandboxPolicy

__all__ = ["corpus_spec", "diagnose", "render"]

_PROBE = """
import os, socket, signal
def attempt(name, fn):
    try:
        fn()
        print(f"{name}\\tALLOWED")
    except BaseException as e:
        print(f"{name}\\tblocked ({type(e).__name__}: {str(e)[:60]})")
attempt("network: socket()", lambda: socket.socket())
attempt("file: read /etc/shadow", lambda: open("/etc/shadow").read(1))
attempt("file: write /tmp", lambda: open("/tmp/rlmx-doctor-probe", "w").write("x"))
attempt("process: fork()", lambda: os._exit(0) if os.fork() == 0 else None)
attempt("process: exec", lambda: os.execv("/bin/true", ["true"]))
attempt("signal: kill(parent)", lambda: os.kill(os.getppid(), 0))
attempt("memory: 8 GB allocation", lambda: bytearray(8 * 2**30))
"""


async def _resolver(req: ToolRequest) -> Any:
    return ""


def _version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as e:
        return f"unusable ({e})"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else "?"


def corpus_spec(paths: list[str]) -> tuple[ContextSpec, str]:
    """The context an execution on ``paths`` (files, folders, globs) would get: ingested into
    the configured store (``RLMX_HOME``, ``RLMX_DATABASE_URL``, ``RLMX_BLOB_URL``) as
    ``rlmx ask`` does — unchanged files are cache hits — with the same blob paths. Returns
    ``(spec, "N documents, corpus ID")``. Raises :class:`~rlmx.errors.IngestError` when
    nothing could be ingested, ``StoreError``/``ConfigError`` for an unusable store."""
    from ..corpus import context_spec, ingest
    from ..store import open_store

    store = open_store()
    try:
        corpus = ingest(list(paths), store)
        spec = context_spec(corpus, store)
    finally:
        close = getattr(store, "close", None)
        if callable(close):
            close()
    return spec, f"{len(spec.docs)} documents, corpus {corpus.corpus_id}"


async def _probe(policy: SandboxPolicy, corpus: ContextSpec | None = None) -> dict[str, Any]:
    from .factory import make_repl
    from .local import LocalREPL
    from .testing import spec_from_texts

    with tempfile.TemporaryDirectory(prefix="rlmx-doctor-") as tmp:
        os.chmod(tmp, 0o755)
        spec = corpus if corpus is not None else spec_from_texts(tmp, {"probe.txt": "rlmx doctor probe\n"})
        probe_policy = policy.model_copy(update={"ast_guard": False, "hardened": False})
        t0 = time.perf_counter()
        repl = make_repl(spec, policy=probe_policy, step_timeout_s=30)
        try:
            await repl.start()
        except Exception as e:
            return {"error": f"{type(e).__name__}: {e}"}
        start_s = time.perf_counter() - t0
        try:
            assert isinstance(repl, LocalREPL)
            step = await repl.run(_PROBE, turn=1, resolver=_resolver)
            layers = dict(repl.layers)
        finally:
            await repl.close()
    probes = [line.split("\t", 1) for line in step.stdout.splitlines() if "\t" in line]
    return {"layers": layers, "probes": probes, "start_s": start_s, "error": step.error}


def diagnose(policy: SandboxPolicy | None = None, corpus: list[str] | None = None) -> dict[str, Any]:
    """The doctor's report as a JSON-able dict. ``corpus``: files, folders or globs; the REPL
    then opens that corpus as an execution on it would (see :func:`corpus_spec`), so layers
    that depend on the corpus (its size, its files' modes and folders) are checked too;
    default: a one-document context of the doctor's own. An ingestion failure is reported
    under ``error`` (no exception)."""
    policy = policy if policy is not None else SandboxPolicy()
    from . import _landlock

    bwrap = shutil.which(policy.bwrap_path)
    rg = shutil.which("rg")
    report: dict[str, Any] = {
        "host": {
            "kernel": platform.release(),
            "machine": platform.machine(),
            "user": f"uid {os.getuid()}" + (" (root)" if os.getuid() == 0 else ""),
            "python": sys.version.split()[0],
            "landlock_abi": _landlock.abi_version(),
        },
        "policy": {
            "runner": policy.runner,
            "hardened": policy.hardened,
            "required_layers": policy.required_layers,
            "memory_mb": policy.memory_mb,
            "workspace_mb": policy.workspace_mb,
            "cpu_s": policy.cpu_s,
            "open_files": policy.open_files,
            "pids": policy.pids,
            "ast_guard": policy.ast_guard,
            "snapshots": policy.snapshots,
        },
        "runners": {
            "local": "available (fork server)" if policy.zygote else "available (new interpreter per REPL)",
            "bwrap": f"{bwrap} ({_version([bwrap, '--version'])})"
            if bwrap
            else "not installed (apt-get install bubblewrap)",
        },
        "tools": {
            "ripgrep": f"{rg} ({_version([rg, '--version'])})" if rg else "not installed (apt-get install ripgrep)"
        },
    }
    if policy.runner == "bwrap" and not bwrap:
        report["error"] = "the configured runner is bwrap but bubblewrap is not installed"
        return report
    spec: ContextSpec | None = None
    if corpus:
        try:
            spec, report["corpus"] = corpus_spec(corpus)
        except RlmxError as e:
            report["error"] = f"cannot open the corpus {' '.join(corpus)}: {type(e).__name__}: {e}"
            return report
    report.update(asyncio.run(_probe(policy, spec)))
    layers = report.get("layers") or {}
    missing = [k for k, v in layers.items() if not v.get("active")]
    report["missing"] = missing
    report["hardened_would_refuse"] = [k for k in missing if k in policy.required_layers]
    return report


def render(report: dict[str, Any]) -> str:
    """The report as text."""
    lines = ["rlmx doctor — sandbox layers on this host", ""]
    h = report["host"]
    lines.append(
        f"host     Linux {h['kernel']} {h['machine']}, {h['user']}, Python {h['python']}, "
        f"Landlock ABI {h['landlock_abi']}"
    )
    p = report["policy"]
    lines.append(
        f"policy   runner={p['runner']} hardened={p['hardened']} memory={p['memory_mb']} MB "
        f"workspace={p['workspace_mb']} MB cpu/step={p['cpu_s'] or 'step limit'} files={p['open_files']} "
        f"pids={p['pids']} guard={p['ast_guard']} snapshots={p['snapshots']}"
    )
    for name, what in report["runners"].items():
        lines.append(f"runner   {name:<6} {what}")
    for name, what in report["tools"].items():
        lines.append(f"tool     {name:<6} {what}")
    if report.get("error") and not report.get("layers"):
        lines += ["", f"ERROR: {report['error']}"]
        return "\n".join(lines)
    if report.get("corpus"):
        lines.append(f"corpus   {report['corpus']}")
    lines += ["", f"layers ({p['runner']} runner; REPL started in {report['start_s'] * 1e3:.0f} ms):"]
    for name, st in report["layers"].items():
        mark = "active " if st.get("active") else "MISSING"
        lines.append(f"  {mark} {name:<13} {st.get('detail')}")
    lines += ["", "probes inside the REPL (AST guard off, so the OS layers answer):"]
    for name, outcome in report.get("probes") or []:
        lines.append(f"  {name:<26} {outcome}")
    lines.append("")
    if report["missing"]:
        lines.append(f"missing layers: {', '.join(report['missing'])} (REPLs run with a warning)")
        if report["hardened_would_refuse"]:
            lines.append(
                "hardened mode (RLMX_SANDBOX_HARDENED=1) would refuse to start: "
                + ", ".join(report["hardened_would_refuse"])
            )
    else:
        lines.append("every layer is active")
    return "\n".join(lines)
