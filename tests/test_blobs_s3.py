"""Object storage (issue 8): ObjectBlobStore on a local S3 server (moto), conditional creates
on both blob stores, errors that say how to fix them, shared secrets, and an execution whose
REPL reads S3 texts through the local cache."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import obstore
import pytest

from rlmx import RLM, Status
from rlmx.corpus import ingest
from rlmx.engine.sandboxing import shared_snapshot_key as _snapshot_key
from rlmx.engine.verify import verify_citations
from rlmx.errors import ConfigError, NotFoundError, StoreError
from rlmx.lm import ScriptedLM
from rlmx.service.auth import load_pepper
from rlmx.service.settings import ServiceSettings
from rlmx.store import open_blobs, open_store
from rlmx.store.base import BlobStore
from rlmx.store.blobcache import BlobCache
from rlmx.store.blobs import LocalBlobStore
from rlmx.store.objects import ObjectBlobStore, parse_s3_url
from rlmx.store.secrets import shared_secret

SRC = str(Path(__file__).resolve().parents[1] / "src")


def s3_blobs(url: str, tmp_path: Path, **kw) -> ObjectBlobStore:
    return ObjectBlobStore(url, cache=BlobCache(tmp_path / "cache", 1 << 20), **kw)


def test_round_trip_through_s3(s3_url: str, tmp_path: Path):
    blobs = open_blobs(s3_url, cache_dir=tmp_path / "cache", cache_max_bytes=1 << 20)
    assert isinstance(blobs, ObjectBlobStore)
    assert not blobs.exists("text/ab.txt")
    blobs.put("text/ab.txt", b"canonical text\n")
    assert blobs.exists("text/ab.txt") and blobs.get("text/ab.txt") == b"canonical text\n"
    blobs.put("snapshots/e1/1.snap", b"v1")
    blobs.put("snapshots/e1/1.snap", b"v2")  # put replaces
    assert blobs.get("snapshots/e1/1.snap") == b"v2"
    # the object lies under the URL's prefix
    bucket, prefix = parse_s3_url(s3_url)
    raw = ObjectBlobStore(f"s3://{bucket}", cache=blobs.cache)
    assert raw.get(f"{prefix}/text/ab.txt") == b"canonical text\n"
    # local_path: a cached copy the REPL can map, fetched once
    p = blobs.local_path("text/ab.txt")
    assert p.is_relative_to(tmp_path / "cache") and p.read_bytes() == b"canonical text\n"
    obstore.delete(raw._store, f"{prefix}/text/ab.txt")  # behind the store's back
    assert blobs.local_path("text/ab.txt") == p  # immutable keys: the copy stays valid
    blobs.put("text/cd.txt", b"x")
    assert blobs.local_path("text/cd.txt").read_bytes() == b"x"
    blobs.delete("text/cd.txt")
    assert not blobs.exists("text/cd.txt") and not (tmp_path / "cache" / "text" / "cd.txt").exists()
    blobs.delete("text/cd.txt")  # absent: a no-op
    with pytest.raises(ValueError):
        blobs.put("../escape", b"x")


def test_open_blobs_keeps_local_folders_local(tmp_path: Path):
    for url in [str(tmp_path / "b1"), f"file://{tmp_path / 'b2'}"]:
        blobs = open_blobs(url, cache_dir=tmp_path / "cache", cache_max_bytes=10)
        assert isinstance(blobs, LocalBlobStore)
        blobs.put("text/a.txt", b"a")
        assert blobs.local_path("text/a.txt") == blobs.root / "text" / "a.txt"  # the file itself, no cache
    assert not (tmp_path / "cache").exists()


@pytest.fixture(params=["local", "s3"])
def any_blobs(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    url = request.getfixturevalue("s3_url")
    return s3_blobs(url, tmp_path)


def test_put_if_absent_creates_once(any_blobs: BlobStore):
    assert any_blobs.put_if_absent("secrets/k", b"first") is True
    assert any_blobs.put_if_absent("secrets/k", b"second") is False
    assert any_blobs.get("secrets/k") == b"first"


def test_put_if_absent_race_between_threads_has_one_winner(any_blobs: BlobStore):
    def go(i: int, key: str, barrier: threading.Barrier, won: list[int]) -> None:
        barrier.wait()
        if any_blobs.put_if_absent(key, f"writer {i}".encode()):
            won.append(i)

    for round_ in range(5):
        barrier = threading.Barrier(8)
        won: list[int] = []
        key = f"snapshots/e/{round_}.snap"
        threads = [threading.Thread(target=go, args=(i, key, barrier, won)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(won) == 1, won
        assert any_blobs.get(f"snapshots/e/{round_}.snap") == f"writer {won[0]}".encode()


_RACER = """
import sys
from pathlib import Path
from rlmx.store import open_blobs
blobs = open_blobs(sys.argv[1], cache_dir=Path(sys.argv[2]), cache_max_bytes=1 << 20)
print("ready", flush=True)
sys.stdin.readline()
print("won" if blobs.put_if_absent("secrets/race", sys.argv[3].encode()) else "lost", flush=True)
"""


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_put_if_absent_race_between_processes_has_one_winner(kind: str, tmp_path: Path, request):
    url = str(tmp_path / "blobs") if kind == "local" else request.getfixturevalue("s3_url")
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, url, str(tmp_path / f"cache{i}"), f"p{i}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        for i in range(4)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    results = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert sorted(results) == ["lost", "lost", "lost", "won"], results
    winner = results.index("won")
    blobs = open_blobs(url, cache_dir=tmp_path / "c", cache_max_bytes=1 << 20)
    assert blobs.get("secrets/race") == f"p{winner}".encode()


def test_errors_say_how_to_fix(s3_url: str, s3_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    blobs = s3_blobs(s3_url, tmp_path)
    with pytest.raises(NotFoundError, match=r"blob 'text/none.txt' not found in s3://.*ingest the files again"):
        blobs.get("text/none.txt")
    with pytest.raises(NotFoundError, match="not found"):
        blobs.local_path("text/none.txt")
    assert not list((tmp_path / "cache").rglob("none.txt"))
    missing = s3_blobs("s3://rlmx-no-such-bucket/p", tmp_path)
    for op in (lambda: missing.put("text/a.txt", b"a"), lambda: missing.get("text/a.txt"), missing.check):
        with pytest.raises(StoreError, match=r"bucket 'rlmx-no-such-bucket' .* does not exist.*create it") as e:
            op()
        assert not isinstance(e.value, NotFoundError)
    blobs.check()  # the fixture's bucket exists
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    down = s3_blobs(s3_url, tmp_path, retry_config={"max_retries": 0, "retry_timeout": timedelta(seconds=2)})
    with pytest.raises(StoreError, match=r"cannot reach S3.*check AWS_ENDPOINT_URL"):
        down.get("text/a.txt")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://s3.example.com:9000")
    with pytest.raises(ConfigError, match="AWS_ALLOW_HTTP"):
        s3_blobs(s3_url, tmp_path)
    monkeypatch.setenv("AWS_ALLOW_HTTP", "true")
    assert s3_blobs(s3_url, tmp_path).endpoint == "http://s3.example.com:9000"  # allowed; nothing contacted
    for bad in ["s3://", "s3:///prefix", "s3://b/../x", "s3://b/p?x=1"]:
        with pytest.raises(ConfigError, match="RLMX_BLOB_URL"):
            parse_s3_url(bad)


def test_refused_credentials_say_which_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from rlmx.dev.s3server import LocalS3

    with LocalS3() as strict:
        endpoint = strict.start(tmp_path / "strict", authenticate=True)
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "not-a-key")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
        monkeypatch.setenv("AWS_REGION", "us-east-1")
        blobs = s3_blobs("s3://rlmx-any/p", tmp_path, retry_config={"max_retries": 0})
        for op in (lambda: blobs.put("text/a.txt", b"a"), lambda: blobs.get("text/a.txt"), blobs.check):
            with pytest.raises(StoreError, match=r"S3 refused.*check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY"):
                op()


def test_shared_secrets_live_in_the_bucket_and_agree(s3_url: str, tmp_path: Path):
    blobs = s3_blobs(s3_url, tmp_path)
    got: list[bytes] = []
    barrier = threading.Barrier(6)

    def load(i: int) -> None:
        barrier.wait()
        got.append(shared_secret(blobs, "snapshot_key", tmp_path / f"host{i}" / "snapshot_key"))

    threads = [threading.Thread(target=load, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 1 and len(got[0]) == 64
    assert blobs.get("secrets/snapshot_key").strip() == got[0]
    assert not list(tmp_path.glob("host*"))  # no local file for a remote store
    # the engine's snapshot key and the service's pepper come from the bucket
    home_a, home_b = tmp_path / "a", tmp_path / "b"
    store_a = open_store(home_a, blob_url=s3_url)
    store_b = open_store(home_b, blob_url=s3_url)
    assert _snapshot_key(home_a, store_a.blobs) == _snapshot_key(home_b, store_b.blobs) == got[0]
    notes: list[str] = []
    pepper_a = load_pepper(ServiceSettings(home=home_a), notes.append, blobs=store_a.blobs)
    pepper_b = load_pepper(ServiceSettings(home=home_b), notes.append, blobs=store_b.blobs)
    assert pepper_a == pepper_b == blobs.get("secrets/key_pepper").strip() and len(notes) == 1
    assert not (home_a / "key_pepper").exists() and not (home_a / "snapshot_key").exists()
    store_a.close()
    store_b.close()


def test_pepper_follows_rlmx_blob_url_and_env_vars_win(s3_url: str, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("RLMX_BLOB_URL", s3_url)
    pepper = load_pepper(ServiceSettings(home=tmp_path / "h"))  # no store given: RLMX_BLOB_URL
    assert s3_blobs(s3_url, tmp_path).get("secrets/key_pepper").strip() == pepper
    monkeypatch.setenv("RLMX_KEY_PEPPER", "from-the-environment")
    assert load_pepper(ServiceSettings(home=tmp_path / "h")) == b"from-the-environment"
    monkeypatch.setenv("RLMX_SANDBOX_SNAPSHOT_KEY", "k" * 40)
    assert _snapshot_key(tmp_path / "h", s3_blobs(s3_url, tmp_path)) is None  # the policy reads the variable


def test_local_store_keeps_local_secret_files(tmp_path: Path):
    store = open_store(tmp_path / "home")
    key = _snapshot_key(store.home, store.blobs)
    path = store.home / "snapshot_key"
    assert key is not None and path.read_bytes().strip() == key and (path.stat().st_mode & 0o777) == 0o600
    assert not store.blobs.exists("secrets/snapshot_key")
    path.write_bytes(b"   ")
    with pytest.raises(ConfigError, match="empty"):
        shared_secret(store.blobs, "snapshot_key", path)
    store.close()


def test_an_execution_reads_s3_texts_through_the_cache(s3_url: str, small_corpus: Path, tmp_path: Path):
    store = open_store(tmp_path / "home", blob_url=s3_url)
    assert isinstance(store.blobs, ObjectBlobStore)
    corpus = ingest([small_corpus], store)
    assert len(corpus.documents) == 3 and not corpus.failures
    gamma = next(d for d in corpus.documents if d.name == "gamma.txt")
    assert store.blobs.exists(gamma.text_key)
    assert not (tmp_path / "home" / "blobs").exists()  # texts are in the bucket, not local
    root = ScriptedLM(
        [
            "```repl\ndoc = [d for d in context if d.name == 'gamma.txt'][0]\n"
            "i = doc.find('Zürich')\nquote = doc[i : i + 22]\nprint(quote)\n```",
            "```repl\nFINAL(quote)\n```",
        ]
    )
    rlm = RLM(model=root)
    rlm._store = store
    ans = rlm.ask(corpus, "Where did café society meet?")
    assert ans.status is Status.COMPLETED and ans.text == "Zürich; the naïve plan"
    assert ans.citations and all(c.doc_name == "gamma.txt" for c in ans.citations)
    checks = verify_citations([c.model_dump() for c in ans.citations], store)
    assert checks and all(ch.ok for ch in checks)
    # the REPL mapped a cached copy of the S3 text
    cached = store.blobs.cache.path_of(gamma.text_key)
    assert cached.is_file() and cached.is_relative_to(tmp_path / "home" / "cache")
    assert store.blobs.exists("secrets/snapshot_key")  # the engine's key is shared through S3
    store.close()
