"""Issue 9, item 1: every sandbox layer holds on a large corpus, and a layer that fails for
one execution is loud.

The corpus used to be granted file by file after the open-files limit (256) was applied: a
corpus of more than ~250 files turned the uid switch and Landlock off (``EMFILE``) with
only a log line, and hardened mode refused the README's own quick start. Here: a
10,000-file corpus gets every layer through ``rlmx ask`` (hardened) and ``rlmx doctor
--corpus``; a layer that the corpus defeats (a 0600 text blob: the uid switch cannot
happen) is a warning on the CLI's stderr and in the trace, and a refusal in hardened mode.
Real ``rlmx`` processes and REPLs; the offline baseline policy answers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlmx.engine.trace import load_trace
from rlmx.sandbox.policy import DEFAULT_REQUIRED
from rlmx.store import open_store

N_FILES = 10_000


def rlmx(*args: str, env: dict[str, str] | None = None, timeout: float = 540) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rlmx.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("these checks need root: the uid switch (a required layer) only exists as root")


@pytest.fixture
def big_corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "big"
    folder.mkdir()
    for i in range(N_FILES):
        (folder / f"f{i:05d}.txt").write_text(f"document {i}: the quick brown fox number {i * 7}\n")
    return folder


@pytest.fixture
def small_corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "small"
    folder.mkdir()
    for i in range(3):
        (folder / f"note{i}.txt").write_text(f"Note {i}: the launch window opens at dawn on day {i + 1}.\n")
    return folder


def test_a_10000_file_corpus_gets_every_layer_and_hardened_mode_completes(big_corpus: Path):
    _require_root()
    home = Path(os.environ["RLMX_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)  # as the store makes it: the uid switch must bind the corpus back
    proc = rlmx(
        "ask", str(big_corpus), "Which document mentions fox number 490?", "--json", env={"RLMX_SANDBOX_HARDENED": "1"}
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "not active" not in proc.stderr and "WITHOUT sandbox" not in proc.stderr, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["status"] == "COMPLETED", out
    trace = load_trace(open_store().meta, out["execution_id"])
    assert trace["turns"] and not any(t.get("sandbox_warnings") for t in trace["turns"])

    doc = rlmx("doctor", "--json", "--corpus", str(big_corpus))
    assert doc.returncode == 0, doc.stderr[-3000:]
    report = json.loads(doc.stdout)
    assert report["corpus"].startswith(f"{N_FILES} documents")
    layers = report["layers"]
    inactive = {k: v["detail"] for k, v in layers.items() if not v["active"]}
    assert not inactive, inactive
    assert set(DEFAULT_REQUIRED) <= set(layers)
    assert "needed paths bound back" in layers["uid"]["detail"]
    rules = int(layers["landlock"]["detail"].split(", ")[1].split()[0])
    assert rules >= N_FILES, layers["landlock"]["detail"]  # one rule per text file, never the folder
    probes = dict(report["probes"])
    assert all(v.startswith("blocked") for v in probes.values()), probes


def test_a_layer_that_fails_for_one_execution_is_loud_and_hardened_refuses(small_corpus: Path):
    _require_root()
    first = rlmx("ask", str(small_corpus), "What is this about?", "--json", timeout=180)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "WITHOUT sandbox" not in first.stderr
    store = open_store()
    eid = json.loads(first.stdout)["execution_id"]
    corpus_id = store.meta.get_execution(eid).corpus_id
    blobs = sorted((Path(os.environ["RLMX_HOME"]) / "blobs" / "text").iterdir())
    assert blobs, "no text blob in the local store"
    os.chmod(blobs[0], 0o600)  # a blob of an older store: other users cannot read it

    second = rlmx("ask", str(small_corpus), "What is this about?", "--json", timeout=180)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "WITHOUT sandbox layer(s): uid: not switched" in second.stderr, second.stderr[-3000:]
    assert "rlmx doctor --corpus" in second.stderr
    out = json.loads(second.stdout)
    assert store.meta.get_execution(out["execution_id"]).corpus_id == corpus_id  # the same corpus
    turns = load_trace(store.meta, out["execution_id"])["turns"]
    assert turns and all(any(w.startswith("uid: not switched") for w in t["sandbox_warnings"]) for t in turns)

    hard = rlmx(
        "ask", str(small_corpus), "What is this about?", "--json", env={"RLMX_SANDBOX_HARDENED": "1"}, timeout=180
    )
    assert hard.returncode != 0, hard.stdout[-2000:]
    assert "required layers are unavailable: uid" in hard.stderr + hard.stdout, hard.stderr[-3000:]
