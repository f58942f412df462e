"""Processes for ``benchmarks/compare.py``: the mock LLM server, timed runs, memory of a tree.

Standard library only. Times are seconds (``time.perf_counter``), memory MiB.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

RLMX_PY = sys.executable
_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))
"""An opener that ignores ``http_proxy``: every request here goes to 127.0.0.1."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def mock_server(scripts: dict[str, list[str]], latency_ms: float = 0) -> Iterator[str]:
    """Run ``rlmx dev mock-llm`` (a separate process) with ``scripts`` (model -> replies, consumed
    in order; other models are echoed) and ``latency_ms`` per request; yield its base URL
    (``http://127.0.0.1:PORT/v1``). Waits until ``GET /v1/models`` answers."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(scripts, f)
    port = _free_port()
    cmd = [RLMX_PY, "-m", "rlmx.cli", "dev", "mock-llm", "--port", str(port), "--latency-ms", str(latency_ms)]
    url = f"http://127.0.0.1:{port}/v1"
    # stderr to a file, not a pipe: a server that logs each request never blocks on it
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen([*cmd, "--script", f.name], stdout=subprocess.DEVNULL, stderr=log)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    _LOCAL.open(url + "/models", timeout=1).read()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        log.seek(0)
                        raise SystemExit(f"the mock server did not start: {log.read().decode()[-2000:]}") from None
                    time.sleep(0.05)  # polling a starting server's port; no event to wait on
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            os.unlink(f.name)


@dataclass
class Run:
    """One finished process: ``wall_s`` spawn → exit; ``stdout`` its text; memory peaks in MiB
    (0 unless sampled): ``peak_pss_mib`` the largest sum of PSS over the process and its
    descendants seen by the sampler, ``hwm_mib`` the root process's own VmHWM (kernel's peak)."""

    wall_s: float
    stdout: str
    peak_pss_mib: float = 0.0
    hwm_mib: float = 0.0
    started: float = 0.0
    """``time.perf_counter()`` just before the spawn."""


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.extend(int(x) for x in f.read().split())
    except OSError:
        pass
    return out


def _field_kib(path: str, name: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(name):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def tree_pss_kib(pid: int) -> int:
    """Sum of ``Pss`` (proportional set size, KiB: shared pages split between their users, so
    forked workers are not counted twice) over ``pid`` and all its descendants."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += _field_kib(f"/proc/{p}/smaps_rollup", "Pss:")
        todo.extend(_children(p))
    return total


def run(cmd: Sequence[str], env: dict[str, str], *, sample_memory: bool = False, timeout: float = 900) -> Run:
    """Run ``cmd`` to its end; raise SystemExit with its stderr if it fails. With
    ``sample_memory``, a thread reads the tree's PSS every 20 ms while it runs."""
    peak = [0]
    hwm = [0]
    done = threading.Event()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], tree_pss_kib(proc.pid))
            hwm[0] = max(hwm[0], _field_kib(f"/proc/{proc.pid}/status", "VmHWM:"))

    sampler = threading.Thread(target=sample, daemon=True) if sample_memory else None
    if sampler:
        sampler.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        wall = time.perf_counter() - t0
        done.set()
        if sampler:
            sampler.join()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{out.decode()[-2000:]}\n{err.decode()[-3000:]}")
    return Run(wall, out.decode(), peak[0] / 1024, hwm[0] / 1024, t0)


def last_json(text: str) -> dict[str, object]:
    """The last line of ``text`` that parses as a JSON object."""
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{") or line.startswith("["):
            value = json.loads(line)
            return value if isinstance(value, dict) else {"runs": value}
    raise SystemExit(f"no JSON in output: {text[-2000:]}")


def write_text_file(path: Path, mb: int) -> Path:
    """A ``mb`` MiB plain-text file of repeated English lines with a needle every ~1 MiB
    (written once; reused when it exists with the right size)."""
    size = mb * 2**20
    if path.exists() and path.stat().st_size == size:
        return path
    line = "the quick brown fox jumps over the lazy dog, lorem ipsum dolor sit amet\n"
    block = line * (2**20 // len(line))
    block += "x" * (2**20 - len(block) - 1) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="ascii") as f:
        for i in range(mb):
            needle = f"needle-{i:06d} "
            f.write(needle + block[len(needle) :])
    return path


@contextmanager
def stamping_proxy(target: str) -> Iterator[tuple[str, list[float]]]:
    """A pass-through HTTP proxy on a thread of this process in front of ``target`` (a base URL
    ``http://HOST:PORT/v1``): yields its own base URL and the list to which it appends the
    ``time.perf_counter()`` of each POST's arrival (so a parent can time spawn → first root
    call of a child on one clock). Adds one local hop to every request, alike for both sides."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    stamps: list[float] = []
    origin = target.rsplit("/v1", 1)[0]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are two writes: no delayed-ACK wait

        def log_message(self, *_args: object) -> None:
            pass

        def _forward(self, body: bytes | None) -> None:
            req = urllib.request.Request(origin + self.path, data=body, method=self.command)
            req.add_header("Content-Type", self.headers.get("Content-Type", "application/json"))
            try:
                with _LOCAL.open(req, timeout=600) as r:
                    status, data = r.status, r.read()
            except urllib.error.HTTPError as e:
                status, data = e.code, e.read()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            stamps.append(time.perf_counter())
            self._forward(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

        def do_GET(self) -> None:
            self._forward(None)

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/v1", stamps
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join()
