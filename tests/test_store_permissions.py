"""The store's files are private to the user running rlmx (issue 9, item 5): a new
``RLMX_HOME`` is created 0700, the SQLite files and the secrets (``key_pepper``,
``snapshot_key``) 0600. Blobs stay 0644 on purpose, so that the sandboxed REPL, which runs
under its own uid, can map them; with the home closed (0700) that uid still reads them (the
uid layer covers the closed folder and binds the corpus files back)."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from rlmx import RLM, Status
from rlmx.corpus import context_spec, corpus_from_texts
from rlmx.sandbox import ToolRequest, make_repl
from rlmx.sandbox.local import LocalREPL
from rlmx.service.auth import load_pepper
from rlmx.service.settings import ServiceSettings
from rlmx.store import open_store

TEXT = "The Marshall Plan rebuilt Europe after the war.\nCongress debated foreign aid for months.\n" * 3


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_parent() -> Iterator[Path]:
    """A 0755 folder outside pytest's own 0700 one, so that the home's mode is what keeps
    other users out (and what the sandbox uid has to get past)."""
    folder = Path(tempfile.mkdtemp(prefix="rlmx-perm-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_a_new_home_is_0700_and_its_database_and_secrets_0600(open_parent: Path):
    home = open_parent / "home"
    ans = RLM(home=home, model="baseline").ask(RLM(home=home).texts({"a.txt": TEXT}), "What rebuilt Europe?")
    assert ans.status is Status.COMPLETED and ans.citations
    load_pepper(ServiceSettings(home=home))

    assert _mode(home) == 0o700, oct(_mode(home))
    db_files = [p for p in home.iterdir() if p.name.startswith("rlmx.sqlite")]
    assert home / "rlmx.sqlite" in db_files
    for path in [*db_files, home / "snapshot_key", home / "key_pepper"]:
        assert path.is_file(), path
        assert _mode(path) == 0o600, f"{path.name} is {oct(_mode(path))}"
        assert path.stat().st_uid == os.geteuid()
    umask = os.umask(0o022)
    os.umask(umask)
    texts = [p for p in (home / "blobs").rglob("*") if p.is_file()]
    assert texts, "no blobs were stored"
    for blob in texts:  # readable by the sandbox's uid, behind the 0700 home
        assert _mode(blob) == 0o644 & ~umask, f"{blob} is {oct(_mode(blob))}"


def test_an_existing_database_is_tightened_to_0600(open_parent: Path):
    home = open_parent / "home"
    home.mkdir(mode=0o755)
    db = home / "rlmx.sqlite"
    open_store(home).close()
    db.chmod(0o644)
    open_store(home).close()
    assert _mode(db) == 0o600


def test_the_sandbox_uid_reads_the_corpus_behind_a_0700_home(open_parent: Path):
    home = open_parent / "home"
    store = open_store(home)
    assert _mode(home) == 0o700
    spec = context_spec(corpus_from_texts({"a.txt": TEXT}, store), store)

    async def resolve(req: ToolRequest) -> str:
        return "ok"

    async def go() -> tuple[dict, str, str | None]:
        async with make_repl(spec) as repl:
            assert isinstance(repl, LocalREPL)
            r = await repl.run("print(context[0][0:17])", turn=1, resolver=resolve)
            return repl.layers, r.stdout, r.error

    try:
        layers, out, error = asyncio.run(go())
    finally:
        store.close()
    assert error is None and out == "The Marshall Plan\n", (out, error)
    uid = layers.get("uid", {})
    if not uid.get("active"):
        pytest.skip(f"the sandbox's uid layer is not active on this host ({uid.get('detail')}): the REPL ran as us")
    # the closed home is the folder the uid layer had to cover, binding the corpus files back
    assert str(home.resolve()) in uid["detail"] and "covered" in uid["detail"], uid["detail"]


def test_tightening_an_open_database_keeps_this_processs_locks(tmp_path: Path):
    """Opening a new connection must not open and close the database file itself: closing any
    descriptor drops every POSIX lock the process holds on the file, which let a second
    process checkpoint away the WAL under a live connection (lost turns under load, see
    https://sqlite.org/howtocorrupt.html section 2.2)."""
    import fcntl
    import subprocess
    import sys

    from rlmx.store.sql_core import _make_private

    db = tmp_path / "held.sqlite"
    db.write_bytes(b"")
    fd = os.open(db, os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX)  # as a SQLite connection of this process would hold it
        _make_private(db)  # what every new connection runs
        probe = (
            "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR)\n"
            "try:\n    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept OSError:\n    sys.exit(0)\nsys.exit(1)"
        )
        done = subprocess.run([sys.executable, "-c", probe, str(db)], timeout=60)
        assert done.returncode == 0, "another process could lock the file: this process's lock was dropped"
    finally:
        os.close(fd)
