"""Smoke runs of the performance harness (``benchmarks/``) at tiny sizes: each command runs
and prints its figures. No timing is asserted (figures depend on the machine)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"rlmx_benchmarks_{name}", BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_fanout_through_http_and_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    fanout = _load("fanout")
    r = fanout.run(prompts=40, latency_ms=5, concurrency=8, in_process=True)
    assert r["sub_calls"] == 40 and r["ideal_s"] == pytest.approx(0.025)
    # 40 calls of 5 ms, 8 at a time, cannot take less than the ideal 5 x 5 ms: a ratio under 1
    # means the concurrency limit let more through or the latency was not applied
    assert r["ratio"] == pytest.approx(r["step_s"] / r["ideal_s"], rel=0.01)
    assert r["ratio"] >= 1.0 and r["step_s"] <= r["execution_s"]
    assert fanout.main(["--prompts", "10", "--latency-ms", "0", "--no-http", "--repeat", "1"]) == 0
    assert "ratio:" in capsys.readouterr().out


def test_cache_latency(capsys: pytest.CaptureFixture[str]) -> None:
    cache = _load("cache_latency")
    assert cache.main(["--calls", "20", "--entries", "40"]) == 0
    out = capsys.readouterr().out
    assert "sub-call prompt" in out and "median" in out


def test_turn_overhead(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.txt").write_text("The Marshall Plan rebuilt Europe.\n" * 20)
    _load("turn_overhead").main(["--turns", "5", "--corpus", str(tmp_path / "a.txt")])
    assert "turn overhead" in capsys.readouterr().out


def test_ingest_text_and_html(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "texts"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.txt").write_text(f"Address number {i}.\n\nWe the people of the year {1950 + i}.\n" * 30)
    ingest = _load("ingest")
    assert ingest.main(["--workers", "1", str(folder)]) == 0
    assert ingest.main(["--workers", "1", "--html", str(folder)]) == 0
    out = capsys.readouterr().out
    assert out.count("MB/s") == 4 and "3 documents, 0 failed" in out


def test_sniah_end_to_end(
    shared_data: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RLMX_BENCH_DATA", str(shared_data))
    assert _load("sniah_1m").main(["--length", "2k", "--methods", "base,rlm-d1"]) == 0
    out = capsys.readouterr().out
    assert "COMPLETED" in out and "peak RSS" in out


def test_mock_server_takes_a_burst_of_connections() -> None:
    """100 clients connecting at once all get answers (the listen backlog holds them), and
    their latency waits overlap (an asynchronous wait, not a thread per request)."""
    import json
    import threading
    import urllib.request

    from rlmx.dev.mock_llm import MockLLMServer

    statuses: list[int] = []
    with MockLLMServer(latency_ms=200) as srv:
        gate = threading.Barrier(100)

        def call(i: int) -> None:
            body = json.dumps({"model": "m", "messages": [{"role": "user", "content": f"p{i}"}]}).encode()
            req = urllib.request.Request(srv.base_url + "/chat/completions", body, {"Content-Type": "application/json"})
            gate.wait()
            with urllib.request.urlopen(req, timeout=30) as resp:
                statuses.append(resp.status)

        threads = [threading.Thread(target=call, args=(i,)) for i in range(100)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        peak = srv.peak_in_flight
    assert statuses == [200] * 100
    assert peak >= 20, f"only {peak} of 100 simultaneous requests were waiting at once"
