"""Property-based API testing: schemathesis generates requests (valid and invalid ones) from
the OpenAPI spec and runs every check (``--checks all``): no 5xx, only documented status
codes and headers, schema-valid bodies accepted and schema-violating ones rejected (a 413
for a body over ``RLMX_MAX_REQUEST_BYTES`` counts as rejected), ``Allow`` on 405.
Half of the generated path ids are replaced by real ones (a READY
session, a finished answerer execution, a runtime execution) so that the deeper code paths
see arbitrary bodies too. Hypothesis is derandomized: CI runs are reproducible.

The state is built by a fixture, and schemathesis's ASGI event-loop thread is
stopped afterwards: other tests count threads (ingestion forks only when single-threaded)."""

from __future__ import annotations

import asyncio
import itertools
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS, is_check_class, load_all_checks
from schemathesis.core.parameters import ParameterLocation

from rlmx.service.app import create_app
from rlmx.service.core import Service
from rlmx.service.settings import ServiceSettings
from rlmx.service.worker import Worker

_HOME = Path(tempfile.mkdtemp(prefix="rlmx-schemathesis-"))
_SVC = Service(
    ServiceSettings(home=_HOME / "store", allowed_paths=str(_HOME / "docs"), rate_limit_per_minute=1_000_000)
)
_APP = create_app(_SVC, worker=False)
# from the app's own spec: no request (and no event-loop thread) at import time
schema = schemathesis.openapi.from_dict(_APP.openapi())
schema.app = _APP
_rejection = schema.config.checks.negative_data_rejection
_rejection.expected_statuses = [*_rejection.expected_statuses, "413"]
load_all_checks()
ALL_CHECKS = [c for c in CHECKS.get_all() if not is_check_class(c)]
"""Every built-in check (``schemathesis run --checks all``)."""
_state: dict[str, Any] = {}
_turn = itertools.count()


@pytest.fixture(scope="module", autouse=True)
def _world() -> Iterator[None]:
    docs = _HOME / "docs"
    docs.mkdir(exist_ok=True)
    (docs / "a.txt").write_text("The Marshall Plan rebuilt Europe after the war.\n" * 3, encoding="utf-8")
    key, _ = _SVC.keys.create("fuzz")
    sid = _SVC.create_session("fuzz", [{"source_name": "a", "path": str(docs)}], queue=False).session_id
    _SVC.ingest_session(sid)
    eid = _SVC.create_execution("fuzz", sid, {"question": "What rebuilt Europe?", "models": {"root": "baseline"}})[
        "execution_id"
    ]
    asyncio.run(Worker(_SVC, poll_s=0.05).run(until_idle=True))
    # a runtime execution started in another event loop: the app restores it (replay) on use
    rid = asyncio.run(_SVC.create_runtime("fuzz", sid, {"sub_calls": "client"}))["execution_id"]
    _state.update(key=key, sid=sid, eid=eid, rid=rid)
    yield
    from schemathesis.python import asgi

    asgi._shutdown()  # stops the app's lifespan (closing its REPLs) and schemathesis's loop thread
    _SVC.close()
    shutil.rmtree(_HOME, ignore_errors=True)


@schema.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: Any) -> None:
    params = case.path_parameters or {}
    if next(_turn) % 2 == 0:
        if "session_id" in params:
            params["session_id"] = _state["sid"]
        if "execution_id" in params:
            runtime = "/steps" in case.path or "/tools/" in case.path
            params["execution_id"] = _state["rid"] if runtime else _state["eid"]
    if case.path.endswith("/events"):  # a running runtime execution's stream would not end
        case.query = {**(case.query or {}), "follow": "false"}
    headers = case.meta.components.get(ParameterLocation.HEADER) if case.meta else None
    # a case that drops the Authorization header tests just that: send it without the key
    keyless = headers is not None and headers.mode.is_negative
    response = case.call(headers=None if keyless else {"Authorization": f"Bearer {_state['key']}"})
    case.validate_response(response, checks=ALL_CHECKS)
