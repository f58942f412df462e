"""Done-when of issue 13: a runtime client that knows nothing but the HTTP API answers a
question over a documentation folder, starting from the prompt the service gives it. A real
`rlmx serve` on 127.0.0.1, the example client (`examples/runtime_client.py`) as its own
process, and an OpenAI-compatible local server playing the client's LM, which sees only
what the service handed out (system prompt, first message, observations)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from rlmx.dev import MockLLMServer
from service_support import rlmx_serve

ROOT = Path(__file__).resolve().parents[1]
PAGE = """<html><head><title>{title}</title></head><body>
<div class="nav"><a href="index.html">Home</a> | <a href="pragma.html">Pragmas</a></div>
<div class="content"><h1>{title}</h1>
{body}
</div><div class="footer">Copyright the authors.</div></body></html>"""


def _doc_folder(tmp_path: Path) -> Path:
    d = tmp_path / "manual"
    (d / "_static").mkdir(parents=True)
    (d / "index.html").write_text(
        PAGE.format(title="Manual", body="<p>This manual covers the file format and the pragmas.</p>"), "utf-8"
    )
    (d / "pragma.html").write_text(
        PAGE.format(
            title="Pragma statements",
            body=(
                "<dl><dt><code>PRAGMA page_size</code> (<code class='type'>integer</code>)</dt>\n"
                "<dd><p>Query or set the page size of the database.\n      The page size must be a power of two"
                " between 512 and 65536.</p></dd>\n"
                "<dt><code>PRAGMA cache_size</code></dt><dd><p>Query or change the suggested number of"
                " database disk pages held in memory.</p></dd></dl>"
            ),
        ),
        "utf-8",
    )
    (d / "fileformat.html").write_text(
        PAGE.format(title="File format", body="<p>A database file is a sequence of pages.</p>"), "utf-8"
    )
    (d / "_static" / "searchindex.js").write_text("Search.setIndex({docnames:['pragma']})", "utf-8")
    (d / "_static" / "style.css").write_text("body { margin: 0 }", "utf-8")
    return d


def _root(model: str, messages: list[dict]) -> str:
    """The client's LM: it learns the corpus from the system prompt and reads observations."""
    system, last = messages[0]["content"], messages[-1]["content"]
    assert messages[0]["role"] == "system" and "context.doc(name)" in system
    assert "'pragma.html'" in system and "searchindex" not in system and "style.css" not in system
    if len(messages) == 2:  # turn 1: only the prompt and the question
        assert "Which pragma sets the page size" in last
        search = "hits = context.search('page size', k=3)\nfor h in hits:\n    print(h.doc_name)"
        return f"Let me search.\n```repl\n{search}\n```"
    if "You have used all" in last:  # the closing request
        return '```repl\nFINAL(context.doc("pragma.html").grep(r"PRAGMA \\w+")[0].text)\n```'
    if "pragma.html" in last:
        return (
            "```repl\ndoc = context.doc('pragma.html')\nh = doc.grep(r'PRAGMA \\w+')[0]\n"
            "assert 'page size' in doc[h.end : h.end + 200]\nFINAL(h.text)\n```"
        )
    return "```repl\nprint(context.names)\n```"


def test_an_http_only_client_answers_over_a_documentation_folder(tmp_path: Path):
    docs = _doc_folder(tmp_path)
    env = {**os.environ, "RLMX_HOME": str(tmp_path / "home"), "RLMX_ALLOWED_PATHS": str(docs)}
    rlmx = [sys.executable, "-m", "rlmx.cli"]
    made = subprocess.run([*rlmx, "keys", "create", "--tenant", "acme"], env=env, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    with rlmx_serve(env, tmp_path / "serve.log") as served:
        base = served.base
        with MockLLMServer(scripts={"root": _root}) as lm:
            client_env = {**env, "RLMX_KEY": key, "OPENAI_BASE_URL": lm.base_url, "OPENAI_API_KEY": "test"}
            cmd = [
                sys.executable,
                str(ROOT / "examples" / "runtime_client.py"),
                "--server",
                base,
                "--model",
                "root",
                "--docs",
                str(docs),
                "Which pragma sets the page size of a database?",
            ]
            done = subprocess.run(cmd, env=client_env, capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, done.stdout + done.stderr
            answer, *cites = done.stdout.splitlines()
            assert answer == "PRAGMA page_size"
            assert cites and cites[0].lstrip().startswith("pragma.html [")
            assert cites[0].endswith("'PRAGMA page_size (integer)'")  # widened to its line, inline code kept
            assert len([r for r in lm.requests if r.model == "root"]) == 2

            # one turn only: the last observation ends with the closing request; one closing step answers
            short = subprocess.run(
                [*cmd, "--max-turns", "1"], env=client_env, capture_output=True, text=True, timeout=300
            )
            assert short.returncode == 1, short.stdout + short.stderr  # MAX_TURNS_EXCEEDED, yet answered
            assert short.stdout.splitlines()[0] == "PRAGMA page_size"
            closing = [r for r in lm.requests if r.model == "root"][-1].messages[-1]["content"]
            assert re.search(r"You have used all 1 turns", closing)

            bad = subprocess.run(cmd, env={**client_env, "RLMX_KEY": ""}, capture_output=True, text=True, timeout=60)
            assert bad.returncode == 2 and "RLMX_KEY" in bad.stderr and "Traceback" not in bad.stderr
