"""Sandbox units: AST guard, sealed snapshots, restore, limits feedback, hardened mode, doctor."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from rlmx.errors import ReplError
from rlmx.sandbox import ContextSpec, SandboxPolicy, Snapshot, StepResult, ToolRequest, make_repl
from rlmx.sandbox.guard import check
from rlmx.sandbox.local import LocalREPL
from rlmx.sandbox.snapshot import Sealer, SnapshotError
from rlmx.sandbox.testing import spec_from_texts


async def _echo(req: ToolRequest) -> Any:
    return "echo:" + str(req.payload.get("prompt"))


@pytest.fixture
def spec(tmp_path: Path) -> ContextSpec:
    return spec_from_texts(tmp_path / "store", {"notes.md": "The launch code is 7-4-1.\n"})


def steps(spec: ContextSpec, codes: list[str], **kw: Any) -> tuple[list[StepResult], LocalREPL]:
    timeout = kw.pop("step_timeout_s", 30)

    async def go() -> tuple[list[StepResult], LocalREPL]:
        repl = make_repl(spec, policy=SandboxPolicy(**kw), step_timeout_s=timeout)
        assert isinstance(repl, LocalREPL)
        async with repl:
            return [await repl.run(c, turn=i + 1, resolver=_echo) for i, c in enumerate(codes)], repl

    return asyncio.run(go())


# -- AST guard ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code, what",
    [
        ("import subprocess", "`import subprocess`"),
        ("import os.path, socket as s", "`import socket`"),
        ("from ctypes import CDLL", "`from ctypes import ...`"),
        ("from urllib import request", "`from urllib import request`"),
        ("import importlib\nimportlib.import_module('x')", "`import importlib`"),
        ("import os as o\no.system('id')", "`o.system`"),
        ("from os import execv", "`from os import execv`"),
        ("x = ().__class__.__bases__[0].__subclasses__()", "the attribute `__subclasses__`"),
        ("f = lambda: 0\nf.__globals__['x'] = 1", "the attribute `__globals__`"),
        ("eval('1 + 1')", "`eval(...)`"),
        ("__import__('os')", "`__import__(...)`"),
        ("getattr(len, '__self__', None) or getattr(f, '__globals__')", "`getattr(..., '__globals__')`"),
    ],
)
def test_the_guard_rejects_obvious_escapes_with_a_clear_message(code, what):
    msg = check(code, "<repl-3>")
    assert msg is not None and msg.startswith("GuardError: line ") and what in msg
    assert "Nothing was run" in msg


def test_the_guard_lets_ordinary_analysis_code_through():
    code = (
        "import re, json, math, collections, os\nfrom concurrent.futures import ThreadPoolExecutor\n"
        "hits = context.grep(r'launch')\nprint(os.path.join('a', 'b'), os.getcwd(), type(hits).__name__)\n"
        "class C:\n    def __repr__(self):\n        return f'{self.__class__.__name__}'\n"
        "os.write(1, b'x'); os._exit if False else None\nd = {}.__class__\n"
    )
    assert check(code) is None
    assert check("import subprocess", guard=False) is None


def test_syntax_errors_are_reported_without_running():
    msg = check("def f(:\n  pass", "<repl-2>")
    assert msg is not None and "SyntaxError" in msg and 'File "<repl-2>", line 1' in msg
    assert "nothing was run" in msg


def test_a_rejected_step_runs_nothing_and_the_repl_goes_on(spec):
    r, _ = steps(spec, ["x = 1", "x = 2\nimport subprocess", "print(x)"])
    assert r[1].error and r[1].error.startswith("GuardError") and r[1].variables == ["x"]
    assert r[2].stdout == "1\n"


# -- snapshots ---------------------------------------------------------------------------------


def test_the_sealer_detects_any_change():
    sealer = Sealer(b"k" * 32)
    snap = sealer.apply(None, 1, [("a", b"AAA"), ("b", b"BBB")], [], {"f": "TypeError: no"})
    sealer.verify(snap)
    snap2 = sealer.apply(snap, 2, [("a", b"A2")], ["b"], {})
    sealer.verify(snap2)
    assert set(snap2.vars) == {"a"} and set(snap.vars) == {"a", "b"}  # the base is unchanged
    again = Snapshot.from_bytes(snap2.to_bytes())
    sealer.verify(again)
    assert again.vars == snap2.vars and again.turn == 2
    for tamper in (
        lambda s: s.vars.__setitem__("a", b"A3"),
        lambda s: s.vars.__setitem__("zzz", b""),
        lambda s: setattr(s, "turn", 5),
        lambda s: s.unsaved.clear() or s.unsaved.update({"x": "y"}),
    ):
        bad = Snapshot.from_bytes(snap2.to_bytes())
        tamper(bad)
        with pytest.raises(SnapshotError):
            sealer.verify(bad)
    with pytest.raises(SnapshotError):
        Sealer(b"other key").verify(snap2)
    with pytest.raises(SnapshotError):
        Snapshot.from_bytes(b"not a snapshot")


def test_restore_keeps_functions_classes_documents_and_names_what_was_lost(spec):
    code = (
        "g = 10\ndef f(x):\n    return x + g\n"
        "class P:\n    def __init__(self, v):\n        self.v = v\n    def twice(self):\n        return 2 * self.v\n"
        "p = P(21)\ndoc = context[0]\nhit = doc.grep('launch')[0]\nsq = lambda v: v * v\n"
        "fh = open('w.txt', 'w')\nimport json as js\n"
    )
    r, _ = steps(
        spec,
        [code, "while True:\n    pass", "g = 20\nprint(f(1), p.twice(), doc[4:10], hit.text, sq(3), js.dumps(1))"],
        step_timeout_s=1.5,
    )
    assert r[0].error is None
    assert not any("fh" in n for n in r[0].notes), r[0].notes  # said only when a later step reads it
    assert r[1].timed_out and "restored to its state after turn 1" in r[1].error
    assert "lost (they could not be saved): fh" in r[1].error
    assert r[2].error is None and r[2].stdout == "21 42 launch launch 9 1\n"  # f sees the live g


def test_only_changed_variables_are_sent_again(spec):
    async def go() -> list[Snapshot]:
        out = []
        async with make_repl(spec, policy=SandboxPolicy()) as repl:
            assert isinstance(repl, LocalREPL)
            for i, code in enumerate(["a = 'x' * 1000\nb = [1]", "b.append(2)", "del a"]):
                await repl.run(code, turn=i + 1, resolver=_echo)
                assert repl.snapshot is not None
                out.append(repl.snapshot)
        return out

    s1, s2, s3 = asyncio.run(go())
    assert set(s1.vars) == {"a", "b"} and s2.vars["a"] is s1.vars["a"] and s2.vars["b"] != s1.vars["b"]
    assert set(s3.vars) == {"b"} and s3.turn == 3


def test_snapshots_can_be_turned_off(spec):
    r, repl = steps(spec, ["x = 1", "while True:\n    pass", "print('x' in dir())"], step_timeout_s=1, snapshots=False)
    assert repl.snapshot is None and "no saved state to restore" in str(r[1].error)
    assert r[2].stdout == "False\n"


def test_the_snapshot_stays_within_its_limit_across_steps(spec):
    """Unchanged immutable values count toward the limit too: a snapshot never grows past it
    over several steps (the orchestrator refuses one that does)."""
    r, repl = steps(spec, ["s1 = 'x' * 600_000", "s2 = 'y' * 600_000", "print(len(s1), len(s2))"], snapshot_max_mb=1)
    assert r[0].error is None and r[1].error is None and r[2].stdout == "600000 600000\n"
    assert r[1].notes == [] and any("s2 (too large to save" in n for n in r[2].notes), r[2].notes  # when read
    assert repl.snapshot is not None and set(repl.snapshot.vars) == {"s1"} and repl.snapshot.size <= 1 << 20


def test_the_orchestrator_refuses_malformed_or_oversized_snapshots(spec):
    from rlmx.sandbox.local import _Violation

    repl = LocalREPL(spec, policy=SandboxPolicy(snapshot_max_mb=1))
    data = b"x" * 1_100_000
    repl._keep_snapshot(1, {"changed": [["a", len(data)]], "_data": data})
    first = repl.snapshot
    assert first is not None and set(first.vars) == {"a"}
    for bad in [
        {"changed": [["b", len(data)]], "_data": data},  # 2.2 MB sealed: past 1 MB + slack
        {"changed": [["b", 10]], "_data": b"x" * 5},
        {"changed": [["b", 5]], "_data": b"x" * 10},
        {"changed": [["b", -1]], "_data": b""},
        {"changed": [["b", True]], "_data": b"x"},
        {"changed": {"b": 1}, "_data": b"x"},
        {"changed": [[1, 1]], "_data": b"x"},
        {"deleted": [1]},
        {"deleted": "a"},
        {"unsaved": ["a"]},
    ]:
        with pytest.raises(_Violation):
            repl._keep_snapshot(2, bad)
        assert repl.snapshot is first, bad


# -- limits feed back --------------------------------------------------------------------------


def test_cpu_limit_per_step_is_an_error_and_the_process_lives_on(spec):
    async def go() -> tuple[list[StepResult], list[int | None]]:
        repl = make_repl(spec, policy=SandboxPolicy(cpu_s=1), step_timeout_s=60)
        assert isinstance(repl, LocalREPL)
        async with repl:
            pids = [repl.pid]
            out = [await repl.run("kept = 1", turn=1, resolver=_echo)]
            out.append(await repl.run("while True:\n    pass", turn=2, resolver=_echo))
            pids.append(repl.pid)
            out.append(await repl.run("print(kept)", turn=3, resolver=_echo))
            return out, pids

    r, pids = asyncio.run(go())
    assert r[1].error and r[1].error.startswith("CpuLimitExceeded") and not r[1].timed_out
    assert pids[0] == pids[1] and r[2].stdout == "1\n"


def test_sub_calls_per_step_are_limited(spec):
    code = (
        "out = []\nfor i in range(4):\n"
        "    try:\n        out.append(llm_query(str(i)))\n"
        "    except Exception as e:\n        out.append(type(e).__name__ + ': ' + str(e)[:60])\nprint(out)"
    )
    r, _ = steps(spec, [code, "print(llm_query('next step'))"], max_subcalls_per_step=2)
    assert "'echo:0', 'echo:1', 'ToolError: llm_query failed: RuntimeError: this step reached its limit" in r[0].stdout
    assert r[1].stdout == "echo:next step\n"


def test_memory_error_is_an_observation(spec):
    r, _ = steps(spec, ["x = 1", "y = ' ' * (4 * 2**30)", "print(x)"], memory_mb=256)
    assert "MemoryError" in str(r[1].error) and r[2].stdout == "1\n"


def test_hardened_mode_refuses_when_a_required_layer_is_missing(spec):
    # only landlock required: when not root the uid and cgroup layers are missing as well
    hardened = SandboxPolicy(hardened=True, landlock=False, required_layers=["landlock"])

    async def go() -> None:
        async with make_repl(spec, policy=hardened):
            pass

    with pytest.raises(ReplError, match="hardened sandbox: required layers are unavailable: landlock"):
        asyncio.run(go())


def test_a_missing_layer_is_logged(spec, caplog):
    with caplog.at_level("WARNING", logger="rlmx.sandbox"):
        r, repl = steps(spec, ["print(1)"], seccomp=False)
    assert r[0].stdout == "1\n" and not repl.layers["seccomp"]["active"]
    assert repl.layers["seccomp"]["detail"] == "disabled by the sandbox policy"


# -- doctor --------------------------------------------------------------------------------------


def test_doctor_reports_layers_and_probes():
    from rlmx.cli.main import cli

    out = CliRunner().invoke(cli, ["doctor", "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert set(report["layers"]) >= {"rlimits", "seccomp", "landlock", "netns", "uid", "cgroup", "no_new_privs"}
    probes = dict(report["probes"])
    assert all(
        v.startswith("blocked") for k, v in probes.items() if report["layers"]["seccomp"]["active"] and "fork" in k
    )
    text = CliRunner().invoke(cli, ["doctor"]).output
    assert "layers (local runner" in text and "probes inside the REPL" in text


# -- grep's raw-byte prefilter -------------------------------------------------------------------


@pytest.mark.parametrize("unicode", [False, True])
def test_prefiltered_grep_finds_exactly_what_block_grep_finds(tmp_path, unicode):
    import random
    import re

    from rlmx.corpus.canonical import TextReader, build_offset_index
    from rlmx.sandbox import _prefilter, _scan

    rnd = random.Random(7)
    alphabet = "ab \n" + ("éß" if unicode else "xy")
    parts = []
    for _ in range(3000):
        parts.append("".join(rnd.choice(alphabet) for _ in range(rnd.randrange(0, 40))))
        parts.append(rnd.choice(["abba-12", "abba-abba-7", "abb", "abba-", "xabba-99y"]))
    text = "".join(parts)
    (tmp_path / "t.txt").write_bytes(text.encode())
    idx = build_offset_index(text)
    if idx is not None:
        (tmp_path / "t.idx").write_bytes(idx)
    reader = TextReader(tmp_path / "t.txt", len(text), tmp_path / "t.idx" if idx else None)
    patterns = [r"abba-\d+", r"abba-(abba-)?\d*", r"abb(?=a)", r"abba-\w+y", r"\babba", r"[ax]bba-\d+", r"\w{2}ba-\d"]
    for pattern in [*patterns, r"(a|x)bba-", r"b\nabb", r"é?abba-"]:
        regex = re.compile(pattern)
        literal = _prefilter.required_literal(regex, min_chars=1)
        for lo, hi in [(0, len(text)), (17, len(text) - 33), (len(text) // 3, len(text) // 2)]:
            want = list(_scan.grep(reader.read, regex, lo, hi, 10**6, block=4096, overlap=256))
            if literal is None:
                continue
            got = list(
                _prefilter.grep_prefiltered(
                    reader, reader.read, regex, literal[0], lo, hi, 10**6, offset=literal[1], overlap=256
                )
            )
            assert got == want, (pattern, lo, hi)
            assert want == [(m.start() + lo, m.end() + lo) for m in regex.finditer(text[lo:hi]) if m.end() > m.start()]
    assert _prefilter.literal_prefix(re.compile(r"abba-\d")) == "abba-"
    assert _prefilter.literal_prefix(re.compile(r"abba", re.I)) == ""
    assert _prefilter.literal_prefix(re.compile(r"\babba")) == "abba"
    assert _prefilter.required_literal(re.compile(r"[Nn]eedle-\d+")) == ("eedle-", 1)
    assert _prefilter.required_literal(re.compile(r"\w+needle")) is None  # variable width before it


def test_grep_matches_are_not_cut_at_window_ends(tmp_path):
    """``$``, ``\\Z``, ``\\b`` and greedy repeats must not match at the end of the window a
    match is first looked for in (a block's overlap, or the prefilter's candidate window):
    both greps must find exactly what ``re.finditer`` finds over the whole range."""
    import random
    import re

    from rlmx.corpus.canonical import TextReader, build_offset_index
    from rlmx.sandbox import _prefilter, _scan

    rnd = random.Random(11)
    lines = ["abc" + "x" * 5000, "more", "abc" + "x" * 4093, "abc" + "x" * 4092 + " y"]  # the reviewer's case first
    for _ in range(60):
        n = rnd.choice([0, 3, 60, 61, 62, 63, 64, 65, 200, 1000, 3000])
        lines.append("".join(rnd.choice("xxxxab c") for _ in range(n)) + rnd.choice(["", "abc", "abcxx"]))
    text = "\n".join(lines) + "\n"
    (tmp_path / "t.txt").write_bytes(text.encode())
    idx = build_offset_index(text)
    if idx is not None:
        (tmp_path / "t.idx").write_bytes(idx)
    reader = TextReader(tmp_path / "t.txt", len(text), tmp_path / "t.idx" if idx else None)
    patterns = [
        r"abc.*$",
        r"abc.*\Z",
        r"(?m)abc.*$",
        r"abcx*\b",
        r"abc[^\n]*",
        r"abcx*(?!x)",
        r"abc(?=x)",
        r"(?m)^\w+$",
        r"abc.*",
    ]
    ranges = [(0, len(text)), (0, 5003), (1, 4000), (5009, len(text) - 7)]
    try:
        for pattern in patterns:
            regex = re.compile(pattern)
            for lo, hi in ranges:
                want = [(m.start() + lo, m.end() + lo) for m in regex.finditer(text[lo:hi]) if m.end() > m.start()]
                for block, overlap in [(256, 64), (4096, 100), (_scan.BLOCK_CHARS, _scan.GREP_OVERLAP_CHARS)]:
                    got = list(_scan.grep(reader.read, regex, lo, hi, 10**6, block=block, overlap=overlap))
                    assert got == want, (pattern, lo, hi, block, overlap)
                literal = _prefilter.required_literal(regex)
                if literal is not None:
                    for overlap in (64, _scan.GREP_OVERLAP_CHARS):
                        got = list(
                            _prefilter.grep_prefiltered(
                                reader,
                                reader.read,
                                regex,
                                literal[0],
                                lo,
                                hi,
                                10**6,
                                offset=literal[1],
                                overlap=overlap,
                            )
                        )
                        assert got == want, (pattern, lo, hi, overlap)
    finally:
        reader.close()
    # the reviewer's case, through the REPL's context
    spec = spec_from_texts(tmp_path / "store", {"t.txt": "abc" + "x" * 5000 + "\nmore\n"})
    (hits,), _ = steps(spec, ["print([(h.start, h.end) for h in context[0].grep(r'abc.*$')])"])
    assert hits.error is None and hits.stdout == "[]\n", hits
