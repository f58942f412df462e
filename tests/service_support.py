"""Helpers for the service tests (not a test module)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx2 as httpx
from fastapi.testclient import TestClient

from rlmx.service.app import create_app
from rlmx.service.core import Service
from rlmx.service.settings import ServiceSettings

T = TypeVar("T")


def wait_for(fn: Callable[[], T | None], what: str, limit_s: float = 90.0, every_s: float = 0.05) -> T:
    """Poll ``fn`` until it returns something truthy (a deadline against hanging, not a timing assertion)."""
    deadline = time.monotonic() + limit_s
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(every_s)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    """A running `rlmx serve`: its process and base URL."""

    proc: subprocess.Popen[bytes]
    base: str


@contextmanager
def rlmx_serve(env: dict[str, str], log: Path, *args: str) -> Iterator[Served]:
    """A real `rlmx serve` process on 127.0.0.1 (its output in ``log``), ready when entered.
    Stopped politely (SIGINT) on exit, killed after 30 s; ``proc.returncode`` says how it ended."""
    port = free_port()
    out = log.open("wb")
    cmd = [sys.executable, "-m", "rlmx.cli", "serve", "--port", str(port), "--log-level", "warning", *args]
    proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    served = Served(proc, f"http://127.0.0.1:{port}")
    try:
        with httpx.Client(base_url=served.base, timeout=30) as c:

            def up() -> bool:
                if proc.poll() is not None:
                    raise AssertionError(f"rlmx serve exited: {log.read_text()}")
                try:
                    return c.get("/health/ready").status_code == 200
                except httpx.TransportError:
                    return False

            wait_for(up, "rlmx serve to start", 60, 0.1)
        yield served
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.close()


def make_service(home: Path, **settings: Any) -> Service:
    return Service(ServiceSettings(home=home, **settings))


def client(service: Service, *, worker: bool = True) -> TestClient:
    return TestClient(create_app(service, worker=worker), raise_server_exceptions=True)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def ready_session(c: TestClient, headers: dict[str, str], docs: list[dict[str, str]]) -> dict[str, Any]:
    r = c.post("/v1/sessions", json={"docs": docs}, headers=headers)
    assert r.status_code == 202, r.text
    sid = r.json()["session_id"]

    def done() -> dict[str, Any] | None:
        s = c.get(f"/v1/sessions/{sid}", headers=headers).json()
        return s if s["status"] != "CREATING" else None

    return wait_for(done, f"session {sid}")


def finished(c: TestClient, headers: dict[str, str], eid: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        e = c.get(f"/v1/executions/{eid}", headers=headers).json()
        return e if e["status"] != "RUNNING" else None

    return wait_for(done, f"execution {eid}")
