"""Helpers for the service tests (not a test module)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

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
