"""A long-running server keeps no per-execution state once an execution is done with:
its registries are bounded by what is live, not by how many executions it served
(issue 10 item 5: the service under load must reach a memory plateau)."""

from __future__ import annotations

import gc
from pathlib import Path

from service_support import auth, client, make_service


def test_runtime_locks_do_not_outlive_their_requests(tmp_path: Path, small_corpus: Path):
    """Every way a runtime REPL leaves this server — cancelled, evicted to make room
    (``RLMX_MAX_RUNTIMES``), finished — leaves no lock behind: the per-execution lock map
    held one entry per runtime execution ever served when its entries were popped only by
    a step that ended the execution."""
    svc = make_service(tmp_path / "home", allowed_paths=str(small_corpus), max_runtimes=2, max_runtimes_per_tenant=8)
    k = auth(svc.keys.create("a")[0])
    sid = svc.create_session("a", [{"source_name": "c", "path": str(small_corpus)}], queue=False).session_id
    svc.ingest_session(sid)
    served: list[str] = []
    with client(svc, worker=False) as c:
        for i in range(6):
            eid = c.post(f"/v1/sessions/{sid}/executions/runtime", json={}, headers=k).json()["execution_id"]
            served.append(eid)
            step = c.post(f"/v1/executions/{eid}/steps", json={"code": f"x = {i}"}, headers=k)
            assert step.status_code == 200 and step.json()["success"], step.text
            if i % 3 == 0:  # cancelled by the client
                assert c.post(f"/v1/executions/{eid}/cancel", headers=k).json()["status"] == "CANCELLED"
            elif i % 3 == 1:  # finished by its own step
                done = c.post(f"/v1/executions/{eid}/steps", json={"code": "FINAL('ok')"}, headers=k).json()
                assert done["status"] == "COMPLETED", done
            # else: left idle, evicted when a later one needs its slot (max_runtimes=2)
        gc.collect()
        assert len(svc.runtimes) <= 2  # the REPL cache holds at most RLMX_MAX_RUNTIMES
        assert len(svc._runtime_locks) == 0, sorted(svc._runtime_locks)
        assert not svc._step_leases
    svc.close()
