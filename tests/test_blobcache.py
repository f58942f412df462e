"""BlobCache: atomic, world-readable copies; bounded by LRU eviction that spares recent files;
safe when several processes share the folder."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlmx.errors import StoreError
from rlmx.store.blobcache import BlobCache

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _age(path: Path, seconds: float) -> None:
    """Pretend ``path`` was last used ``seconds`` ago."""
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_materialise_writes_a_complete_readable_copy_once(tmp_path: Path):
    cache = BlobCache(tmp_path / "cache", 1 << 20)
    calls = []

    def write(f):
        calls.append(1)
        f.write(b"hello ")
        f.write(b"world")

    p = cache.materialise("text/ab.txt", write)
    assert p == tmp_path / "cache" / "text" / "ab.txt" and p.read_bytes() == b"hello world"
    assert cache.materialise("text/ab.txt", write) == p and len(calls) == 1  # a hit: no second fetch
    assert (p.stat().st_mode & 0o777) == 0o644 & ~_umask()
    assert (p.parent.stat().st_mode & 0o777) == 0o755 & ~_umask()
    assert [q.name for q in p.parent.iterdir()] == ["ab.txt"]  # no temporary file left
    assert cache.get("text/missing.txt") is None
    assert cache.total_bytes() == 11


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_a_failed_fetch_leaves_nothing(tmp_path: Path):
    cache = BlobCache(tmp_path / "cache", 1 << 20)

    def broken(f):
        f.write(b"partial")
        raise RuntimeError("network down")

    with pytest.raises(RuntimeError, match="network down"):
        cache.materialise("text/x.txt", broken)
    assert cache.get("text/x.txt") is None
    assert list((tmp_path / "cache" / "text").iterdir()) == []


def test_invalid_keys_are_refused(tmp_path: Path):
    cache = BlobCache(tmp_path / "cache", 100)
    for key in ["../etc/passwd", "/abs", "a//b", "text/.tmp-x"]:
        with pytest.raises(ValueError):
            cache.path_of(key)


def test_cache_is_bounded_oldest_unused_first(tmp_path: Path):
    cache = BlobCache(tmp_path / "cache", 300, min_age_s=600)
    paths = {k: cache.put(f"text/{k}.txt", k.encode() * 100) for k in "abc"}
    _age(paths["a"], 3000)
    _age(paths["b"], 2000)
    _age(paths["c"], 1000)
    cache.get("text/a.txt")  # a is the oldest file but was just used: it stays
    assert time.time() - paths["a"].stat().st_mtime < 60
    cache.put("text/d.txt", b"d" * 100)  # 400 bytes > 300: evict the least recently used
    assert not paths["b"].exists()
    assert paths["a"].exists() and paths["c"].exists() and cache.get("text/d.txt") is not None
    assert cache.total_bytes() == 300


def test_files_used_recently_are_never_evicted(tmp_path: Path):
    cache = BlobCache(tmp_path / "cache", 250, min_age_s=600)
    old = cache.put("text/old.txt", b"o" * 100)
    _age(old, 700)
    recent = [cache.put(f"text/r{i}.txt", b"r" * 100) for i in range(4)]
    assert not old.exists()  # the only file past min_age_s goes
    _age(recent[0], 599)  # used 599 s ago: an execution may still open it
    assert cache.evict() == 400  # over the bound while the files are in use
    assert all(p.exists() for p in recent)
    for p in recent:
        _age(p, 601)
    assert cache.evict() <= 250
    assert sum(p.exists() for p in recent) == 2


def test_stale_temporary_files_are_removed(tmp_path: Path):
    cache = BlobCache(tmp_path / "cache", 1000, min_age_s=600)
    (tmp_path / "cache" / "text").mkdir()
    stale = tmp_path / "cache" / "text" / ".tmp-crashed"
    stale.write_bytes(b"x" * 10)
    _age(stale, 7200)
    fresh = tmp_path / "cache" / "text" / ".tmp-writing"
    fresh.write_bytes(b"y")
    cache.evict()
    assert not stale.exists() and fresh.exists()


def test_unwritable_folder_says_which_variable(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="RLMX_CACHE_DIR"):
        BlobCache(blocker / "cache", 100)
    with pytest.raises(ValueError, match="RLMX_CACHE_MAX_BYTES"):
        BlobCache(tmp_path / "c", -1)


_WORKER = """
import sys
from pathlib import Path
from rlmx.store.blobcache import BlobCache
cache = BlobCache(Path(sys.argv[1]), 1 << 30)
data = bytes(range(256)) * 4096  # 1 MiB
print("ready", flush=True)
sys.stdin.readline()
for _ in range(int(sys.argv[2])):
    cache.discard("text/shared.bin")

    def write(f):
        for i in range(0, len(data), 65536):
            f.write(data[i : i + 65536])

    p = cache.materialise("text/shared.bin", write)
assert p.read_bytes() == data
print("ok", flush=True)
"""


def test_two_processes_materialising_one_key_both_end_with_a_correct_file(tmp_path: Path):
    folder = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(folder), "30"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        for _ in range(2)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    expected = bytes(range(256)) * 4096
    while any(p.poll() is None for p in procs):  # meanwhile readers see all or nothing
        try:
            data = (folder / "text" / "shared.bin").read_bytes()
        except FileNotFoundError:
            continue
        assert data == expected
    outs = [p.communicate(timeout=60)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0] and all("ok" in o for o in outs), outs
    assert (folder / "text" / "shared.bin").read_bytes() == expected
    assert not [q for q in (folder / "text").iterdir() if q.name.startswith(".tmp-")]
