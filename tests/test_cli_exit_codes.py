"""`rlmx` exit codes 4 (BUDGET_EXCEEDED) and 5 (FAILED, CANCELLED) and `rlmx keys list`, as a
user runs them: real processes, a scripted model (the LM boundary), a store in RLMX_HOME."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from rlmx.api import status_exit_code
from rlmx.types import Status


def rlmx(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rlmx.cli", *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=180,
        env=dict(os.environ),  # RLMX_HOME: this test's own (conftest)
    )


def _script(tmp_path: Path, data: object) -> str:
    path = tmp_path / "script.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return f"scripted:{path}"


def test_exit_code_4_when_a_budget_is_exceeded(small_corpus: Path, tmp_path: Path):
    model = _script(
        tmp_path,
        {
            "root": [
                "```repl\nx = llm_query('one')\ny = llm_query('two')\nprint(x, y)\n```",
                "```repl\nFINAL('x')\n```",
            ],
            "sub": ["first", "second"],
        },
    )
    proc = rlmx("ask", str(small_corpus), "q?", "--model", model, "--max-sub-calls", "1", "--json", "-q")
    assert proc.returncode == 4, proc.stderr
    out = json.loads(proc.stdout)
    assert out["status"] == "BUDGET_EXCEEDED" and out["usage"]["sub_calls"] == 1
    assert "sub-call budget of 1" in out["error"]


def test_exit_code_5_when_the_execution_fails(small_corpus: Path, tmp_path: Path):
    # the scripted root runs out of replies at turn 2: a non-retryable provider error, FAILED
    model = _script(tmp_path, ["```repl\nprint('turn one')\n```"])
    proc = rlmx("ask", str(small_corpus), "q?", "--model", model, "--json", "-q")
    assert proc.returncode == 5, proc.stderr
    out = json.loads(proc.stdout)
    assert out["status"] == "FAILED" and "script exhausted" in out["error"]
    assert out["usage"]["turns"] == 2


def test_every_status_has_its_documented_exit_code():
    # `rlmx ask` has no way to cancel its own execution; CANCELLED shares FAILED's code 5
    codes = {s: status_exit_code(s) for s in Status if s is not Status.RUNNING}
    assert codes == {
        Status.COMPLETED: 0,
        Status.MAX_TURNS_EXCEEDED: 3,
        Status.BUDGET_EXCEEDED: 4,
        Status.FAILED: 5,
        Status.CANCELLED: 5,
    }


def test_keys_list_shows_ids_tenants_and_revocations_never_the_keys():
    assert rlmx("keys", "list").stdout == ""
    made = rlmx("keys", "create", "--tenant", "acme", "--name", "ci")
    assert made.returncode == 0, made.stderr
    key_a = made.stdout.strip()
    key_b = rlmx("keys", "create", "--tenant", "globex").stdout.strip()
    assert key_a.startswith("rlmx_") and key_b.startswith("rlmx_")
    key_a_id = re.search(r"key (key_\S+) for tenant acme", made.stderr)
    assert key_a_id, made.stderr
    assert rlmx("keys", "revoke", key_b).returncode == 0

    listed = rlmx("keys", "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert len(lines) == 2 and key_a not in listed.stdout and key_b not in listed.stdout
    (acme,) = [line for line in lines if " acme " in line]
    (globex,) = [line for line in lines if " globex " in line]
    assert acme.startswith(key_a_id.group(1)) and " active " in acme and acme.endswith("ci")
    assert " revoked " in globex

    only = rlmx("keys", "list", "--tenant", "acme")
    assert only.returncode == 0 and only.stdout.splitlines() == [acme]
