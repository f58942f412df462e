"""Per-key rate limits shared by every API server through the metadata database: the limits
storage (SQLite, and PostgreSQL through the ``pg_url`` fixture), the RateLimiter over it,
and two real `rlmx serve` processes on one database counting one limit."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from limits import RateLimitItemPerSecond
from limits.strategies import FixedWindowRateLimiter

from rlmx.errors import ConfigError, StoreError
from rlmx.service.auth import RateLimiter
from rlmx.service.ratelimit_storage import SQLRateLimitStorage, storage_for
from rlmx.store import MetadataStore, open_metadata
from service_support import wait_for


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh metadata database: a SQLite file, or PostgreSQL through ``pg_url``."""
    if request.param == "sqlite":
        return str(tmp_path / "meta.sqlite")
    return str(request.getfixturevalue("pg_url"))  # fails, never skips, without a PostgreSQL


@pytest.fixture
def metas(db_url: str) -> Iterator[list[MetadataStore]]:
    """Two metadata stores on the same database (separate engines and pools, like two servers)."""
    opened = [open_metadata(db_url, migrate=True), open_metadata(db_url, migrate=True)]
    yield opened
    for m in opened:
        close = getattr(m, "close", None)
        if callable(close):
            close()


@pytest.fixture
def storage(metas: list[MetadataStore]) -> SQLRateLimitStorage:
    return storage_for(metas[0])


def test_counts_expiry_clear_and_reset(storage: SQLRateLimitStorage):
    assert storage.check()
    assert storage.get("a") == 0
    assert [storage.incr("a", 60) for _ in range(3)] == [1, 2, 3]
    assert storage.incr("a", 60, amount=2) == 5 and storage.get("a") == 5
    left = storage.get_expiry("a") - time.time()
    assert 55 < left <= 60
    assert storage.incr("b", 60) == 1
    storage.clear("a")
    assert storage.get("a") == 0 and storage.get("b") == 1
    assert storage.incr("a", 60) == 1  # a new window
    assert storage.reset() == 2
    assert storage.get("a") == storage.get("b") == 0


def test_an_ended_window_starts_again(storage: SQLRateLimitStorage):
    """A window of 0 s has ended by the next statement: every hit opens a new one."""
    assert storage.incr("k", 0) == 1
    assert storage.get("k") == 0  # expired counters read as absent
    assert storage.get_expiry("k") <= time.time()
    assert storage.incr("k", 0, amount=3) == 3  # reset, not 4
    assert storage.incr("k", 60) == 1  # the expired row starts a fresh 60 s window
    assert storage.incr("k", 60) == 2


def test_concurrent_increments_are_counted_exactly(metas: list[MetadataStore]):
    """Threads on two storages (two engines on one database) hit one key: every increment
    is counted once, and each caller sees a distinct count."""
    storages = [storage_for(m) for m in metas]
    threads_n, each = 8, 25
    barrier = threading.Barrier(threads_n)
    seen: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            barrier.wait()
            got = [storages[i % 2].incr("shared", 60) for _ in range(each)]
            with lock:
                seen.extend(got)
        except BaseException as e:  # reported below, not lost in the thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert sorted(seen) == list(range(1, threads_n * each + 1))
    assert storages[1].get("shared") == threads_n * each


def test_fixed_window_strategy_over_real_time(storage: SQLRateLimitStorage):
    """limits' fixed window over this storage: 2 a second, refused beyond, allowed again
    once the window has ended (polled with a deadline, no fixed sleep)."""
    strategy = FixedWindowRateLimiter(storage)
    item = RateLimitItemPerSecond(2)
    assert strategy.hit(item, "key_1") and strategy.hit(item, "key_1")
    assert not strategy.hit(item, "key_1")
    assert strategy.hit(item, "key_2")  # another key has its own window
    stats = strategy.get_window_stats(item, "key_1")
    assert stats.remaining == 0 and 0 < stats.reset_time - time.time() <= 1.0
    wait_for(lambda: strategy.test(item, "key_1"), "the 1 s window to end", limit_s=10)
    assert strategy.hit(item, "key_1")


def test_rate_limiter_hit_and_retry_after(storage: SQLRateLimitStorage):
    limiter = RateLimiter(3, storage)
    assert [limiter.hit("key_a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.hit("key_a")
    assert 0 < wait <= 60
    assert limiter.hit("key_b") == 0.0


def test_windows_follow_the_database_clock(storage: SQLRateLimitStorage, monkeypatch: pytest.MonkeyPatch):
    """A host clock an hour ahead neither ends a window early nor skews Retry-After."""
    limiter = RateLimiter(2, storage)
    assert limiter.hit("key_a") == 0.0
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 3600)
    assert limiter.hit("key_a") == 0.0
    assert 0 < limiter.hit("key_a") <= 60  # still the same window, and about a minute left


def test_database_failures_are_store_errors(storage: SQLRateLimitStorage):
    with storage.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE rate_limits")
    with pytest.raises(StoreError, match="rate-limit table"):
        storage.incr("k", 60)
    assert storage.check()  # the database itself still answers


def test_a_store_without_a_database_is_refused():
    with pytest.raises(ConfigError, match="RLMX_DATABASE_URL"):
        storage_for(object())  # type: ignore[arg-type]


# --- two real servers --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_two_servers_share_one_limit_per_key(tmp_path: Path):
    """RLMX_RATE_LIMIT_PER_MINUTE=5 with requests alternating between two `rlmx serve`
    processes on one RLMX_HOME: 5 pass in all (not 10), then 429 with Retry-After from both;
    another key is unaffected."""
    env = {**os.environ, "RLMX_HOME": str(tmp_path / "home"), "RLMX_RATE_LIMIT_PER_MINUTE": "5"}
    rlmx = [sys.executable, "-m", "rlmx.cli"]
    keys = []
    for tenant in ("acme", "globex"):
        made = subprocess.run([*rlmx, "keys", "create", "--tenant", tenant], env=env, capture_output=True, text=True)
        assert made.returncode == 0, made.stderr
        keys.append({"Authorization": f"Bearer {made.stdout.strip()}"})
    ports = [_free_port(), _free_port()]
    logs = [tmp_path / f"serve{i}.log" for i in range(2)]
    procs = []
    for port, log in zip(ports, logs, strict=True):
        with log.open("wb") as out:
            cmd = [*rlmx, "serve", "--port", str(port), "--no-worker", "--log-level", "warning"]
            procs.append(subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT))
    clients = [httpx.Client(base_url=f"http://127.0.0.1:{p}", timeout=30) for p in ports]
    try:
        for c in clients:

            def up(c: httpx.Client = c) -> bool:
                try:
                    return c.get("/health/ready").status_code == 200
                except httpx.TransportError:
                    return False

            wait_for(up, "rlmx serve to start", 60, 0.1)
        codes = [clients[i % 2].get("/v1/sessions", headers=keys[0]).status_code for i in range(5)]
        assert codes == [200] * 5
        for c in clients:
            r = c.get("/v1/sessions", headers=keys[0])
            assert r.status_code == 429, r.text
            assert 1 <= int(r.headers["retry-after"]) <= 60 and "5 requests a minute" in r.json()["detail"]
        assert [c.get("/v1/sessions", headers=keys[1]).status_code for c in clients] == [200, 200]
    finally:
        for c in clients:
            c.close()
        for proc in procs:
            _stop(proc)
    for proc, log in zip(procs, logs, strict=True):
        assert proc.returncode == 0, log.read_text()
