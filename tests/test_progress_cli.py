"""Live progress of `rlmx ask` (issue 12 item 2) as a user sees it in a log: a real process,
a scripted model (the LM boundary), stderr a pipe (not a terminal)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

SCRIPT = {
    "root": [
        "```repl\nparts = llm_query_batched(['one', 'two'])\nprint(parts)\n```",
        "```repl\nprint(llm_query('three'))\n```",
        "```repl\nFINAL('done')\n```",
    ],
    "sub": ["a", "b", "c"],
}

TURN_LINE = re.compile(
    r"^turn (\d+)/7: root \d+\.\d\d s, step \d+\.\d\d s · sub-calls (\d+) done · ([\d,]+) tokens · \$0\.0000$"
)


def _ask(corpus: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "script.json"
    script.write_text(json.dumps(SCRIPT), encoding="utf-8")
    args = ["ask", str(corpus), "q?", "--model", f"scripted:{script}", "--max-turns", "7", *extra]
    return subprocess.run(
        [sys.executable, "-m", "rlmx.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),  # RLMX_HOME: this test's own (conftest)
    )


def test_one_line_per_turn_on_a_pipe(small_corpus: Path, tmp_path: Path):
    proc = _ask(small_corpus, tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = [m for line in proc.stderr.splitlines() if (m := TURN_LINE.match(line))]
    assert [m.group(1) for m in lines] == ["1", "2", "3"], proc.stderr
    assert [int(m.group(2)) for m in lines] == [2, 3, 3]  # sub-calls done so far, the whole tree
    tokens = [int(m.group(3).replace(",", "")) for m in lines]
    assert tokens[0] > 0 and tokens == sorted(tokens) and tokens[2] > tokens[1]
    assert "\x1b[" not in proc.stderr  # no live display or colours in a log


def test_quiet_silences_progress(small_corpus: Path, tmp_path: Path):
    proc = _ask(small_corpus, tmp_path, "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert not any(TURN_LINE.match(line) for line in proc.stderr.splitlines())
    assert "turn" not in proc.stderr and "sub-calls" not in proc.stderr
    assert "done" in proc.stdout  # the answer is still printed
