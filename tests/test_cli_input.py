"""`rlmx` given bad input or a malformed setting (issue 9, items 6 and 7): a clear message
and exit 2, never a traceback. Real processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def rlmx(*args: str, input: bytes | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "rlmx.cli", *args],
        input=input,
        capture_output=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    return subprocess.CompletedProcess(
        proc.args, proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
    )


def _usage_error(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    for w in words:
        assert w in proc.stderr, proc.stderr


def test_verify_of_a_binary_file_is_a_usage_error(tmp_path: Path):
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(bytes(range(256)) * 4)
    _usage_error(rlmx("verify", str(garbage)), "not UTF-8", "rlmx ask --json")
    _usage_error(rlmx("verify", "-", input=b"\xff\xfe{}"), "not UTF-8")


@pytest.mark.parametrize("body", [b"[1,2,3]\n", b'{"citations": ["x"]}', b'{"citations": [null]}', b"[[]]"])
def test_verify_of_citations_that_are_not_objects_is_a_usage_error(body: bytes):
    _usage_error(rlmx("verify", "-", input=body), "citation 1", "not an object")


def test_verify_of_other_json_is_still_a_usage_error():
    _usage_error(rlmx("verify", "-", input=b'{"answer": 1}'), "citations")
    _usage_error(rlmx("verify", "-", input=b'{"citations": [1'), "not JSON")


@pytest.mark.parametrize(
    ("var", "args"),
    [
        ("RLMX_STEP_TIMEOUT_S", ("ingest", "nothing-here")),
        ("RLMX_MAX_CONCURRENCY", ("verify", "-")),
        ("RLMX_MAX_UPLOAD_BYTES", ("serve", "--port", "0")),
        ("RLMX_RATE_LIMIT_PER_MINUTE", ("worker", "--until-idle")),
    ],
)
def test_a_malformed_variable_is_named_and_exits_2(var: str, args: tuple[str, ...]):
    proc = rlmx(*args, input=b"[]", env={var: "abc"})
    _usage_error(proc, var, "'abc'", "unset")
