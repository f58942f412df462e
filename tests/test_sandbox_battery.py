"""The adversarial battery (issue 3, item 6), run against every runner.

Each attack runs as one step of a REPL whose previous step set ``canary = 41``; it must be
contained (no side effect outside the sandbox), reported to the model (an error, or for a
flood the cap's marker), and the next step of the same execution must work and still see
``canary``. Runners: ``local`` with the AST guard (the default), ``local`` without it (so
that the operating-system layers are what contains the attack) and ``bwrap`` without it
(skipped, with the reason, when bubblewrap is not installed). Layers a host cannot provide
make the checks that depend on them skip with the reason (see ``rlmx doctor``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from rlmx.sandbox import ContextSpec, SandboxPolicy, Snapshot, StepResult, ToolRequest, make_repl
from rlmx.sandbox.bwrap import bwrap_path
from rlmx.sandbox.local import LocalREPL
from rlmx.sandbox.testing import spec_from_texts

RUNNERS = [
    pytest.param(("local", True), id="local"),
    pytest.param(("local", False), id="local-noguard"),
    pytest.param(
        ("bwrap", False),
        id="bwrap-noguard",
        marks=pytest.mark.skipif(
            bwrap_path() is None, reason="bubblewrap is not installed (apt-get install bubblewrap)"
        ),
    ),
]
SECRET = "sk-battery-" + secrets.token_hex(8)


async def _resolver(req: ToolRequest) -> Any:
    return "ok"


@pytest.fixture
def spec(tmp_path: Path) -> ContextSpec:
    return spec_from_texts(tmp_path / "store", {"notes.md": "The launch code is 7-4-1.\n"})


@pytest.fixture(params=RUNNERS)
def runner(request: pytest.FixtureRequest) -> tuple[str, bool]:
    return request.param  # type: ignore[no-any-return]


def policy(runner: tuple[str, bool], **kw: Any) -> SandboxPolicy:
    name, guard = runner
    base: dict[str, Any] = {"runner": name, "ast_guard": guard, "memory_mb": 512, "workspace_mb": 64, "cpu_s": 60}
    base.update(kw)
    return SandboxPolicy(**base)


def run_steps(
    spec: ContextSpec,
    runner: tuple[str, bool],
    codes: list[str],
    *,
    step_timeout_s: float = 30,
    before: Callable[[Any], None] | None = None,
    resolver: Callable[[ToolRequest], Any] = _resolver,
    **kw: Any,
) -> tuple[list[StepResult], Any]:
    async def go() -> tuple[list[StepResult], Any]:
        repl = make_repl(spec, policy=policy(runner, **kw), step_timeout_s=step_timeout_s, output_cap_chars=10_000)
        async with repl:
            if before is not None:
                before(repl)
            out = [await repl.run(c, turn=i + 1, resolver=resolver) for i, c in enumerate(codes)]
            return out, repl

    return asyncio.run(go())


def attack(spec: ContextSpec, runner: tuple[str, bool], code: str, **kw: Any) -> StepResult:
    """canary → attack → the next step works and still sees the canary. Returns the attack's result."""
    (_setup, hit, after), _ = run_steps(spec, runner, ["canary = 41", code, "print(canary + 1)"], **kw)
    assert _setup.error is None, _setup.error
    assert after.error is None and after.stdout == "42\n", (after, hit)
    return hit


def layer_active(spec: ContextSpec, runner: tuple[str, bool], name: str) -> bool:
    async def go() -> dict[str, Any]:
        async with make_repl(spec, policy=policy(runner)) as repl:
            assert isinstance(repl, LocalREPL)
            return repl.layers

    return bool(asyncio.run(go()).get(name, {}).get("active"))


def test_connect_to_a_listener_on_localhost_sees_no_connection(spec, runner):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.setblocking(False)
    port = srv.getsockname()[1]
    try:
        hit = attack(
            spec,
            runner,
            "import socket\ns = socket.socket()\ns.settimeout(2)\n"
            f"s.connect(('127.0.0.1', {port}))\nprint('connected')",
        )
        assert hit.error and "connected" not in hit.stdout
        with pytest.raises(BlockingIOError):
            srv.accept()  # zero connections reached the listener
    finally:
        srv.close()


def test_dns_lookup_fails(spec, runner):
    hit = attack(spec, runner, "import socket\nprint(socket.getaddrinfo('example.com', 80))")
    assert hit.error and "(" not in hit.stdout


@pytest.mark.parametrize("path", ["/etc/shadow", "/root/.ssh/id_rsa", "/root/.bash_history"])
def test_reading_host_secrets_fails(spec, runner, path):
    hit = attack(spec, runner, f"print(open({path!r}).read()[:50])")
    assert hit.error and ("PermissionError" in hit.error or "FileNotFoundError" in hit.error or "Guard" in hit.error)
    assert hit.stdout == ""


def test_a_private_file_of_the_orchestrator_user_is_unreadable(spec, runner, tmp_path):
    secret_dir = tmp_path / "home" / ".ssh"
    secret_dir.mkdir(parents=True)
    key = secret_dir / "id_ed25519"
    key.write_text(SECRET)
    key.chmod(0o600)
    hit = attack(spec, runner, f"print(open({str(key)!r}).read())")
    assert hit.error and SECRET not in hit.stdout + hit.error


def test_the_orchestrators_environment_is_unreadable(spec, runner, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    code = (
        "import os\n"
        "print(dict(os.environ))\n"
        "for pid in (os.getppid(), 1, " + str(os.getpid()) + "):\n"
        "    for f in ('environ', 'cmdline', 'mem'):\n"
        "        try:\n"
        "            print(open(f'/proc/{pid}/{f}', 'rb').read(4096))\n"
        "        except Exception as e:\n"
        "            print('denied', pid, f, type(e).__name__)\n"
    )
    hit = attack(spec, runner, code)
    assert SECRET not in hit.stdout + (hit.error or "")
    if hit.error is None:  # the guard let it run: every read of another process was refused
        assert hit.stdout.count("denied") == 9, hit.stdout


def test_writing_outside_the_workspace_fails(spec, runner):
    target = f"/tmp/rlmx-battery-{secrets.token_hex(4)}"
    hit = attack(spec, runner, f"open({target!r}, 'w').write('x')")
    assert hit.error and not os.path.exists(target)
    ok, _ = run_steps(spec, runner, ["open('inside.txt', 'w').write('fine')\nprint(open('inside.txt').read())"])
    assert ok[0].stdout == "fine\n"


@pytest.mark.parametrize(
    "code",
    [
        "import subprocess\nsubprocess.run(['touch', '{t}'])",
        "import os\nos.execv('/bin/sh', ['sh', '-c', 'touch {t}'])",
        "import os\nrc = os.system('touch {t}')\nassert rc == 0, f'os.system failed: {{rc}}'",
        "import os\nos.posix_spawn('/bin/touch', ['touch', '{t}'], {{}})",
    ],
    ids=["subprocess", "exec", "system", "posix_spawn"],
)
def test_starting_programs_fails(spec, runner, code):
    target = f"/tmp/rlmx-battery-{secrets.token_hex(4)}"
    hit = attack(spec, runner, code.format(t=target))
    assert hit.error and not os.path.exists(target)


def test_fork_bomb_is_contained(spec, runner):
    hit = attack(spec, runner, "import os\nwhile True:\n    os.fork()")
    assert hit.error and ("PermissionError" in hit.error or "Guard" in hit.error)


def test_thread_bomb_is_contained(spec, runner):
    code = (
        "import threading, time\nn = 0\n"
        "while n < 100_000:\n"
        "    threading.Thread(target=time.sleep, args=(20,), daemon=True).start()\n"
        "    n += 1"
    )
    hit = attack(spec, runner, code)
    assert hit.error and ("can't start new thread" in hit.error or "MemoryError" in hit.error), hit.error


FORK_BOMB = (
    "import os\nr, w = os.pipe()\nn = 0\n"
    "try:\n"
    "    while n < 5000:\n"
    "        if os.fork() == 0:\n"
    "            try:\n"
    "                os.close(w)\n"
    "                os.read(r, 1)\n"
    "            finally:\n"
    "                os._exit(0)\n"
    "        n += 1\n"
    "except OSError as e:\n"
    "    print('stopped after', n, type(e).__name__)\n"
    "finally:\n"
    "    os.close(w)\n"
    "    while True:\n"
    "        try:\n"
    "            os.wait()\n"
    "        except ChildProcessError:\n"
    "            break\n"
)


def test_fork_bomb_without_seccomp_is_bounded_by_the_task_limits(spec, runner):
    """seccomp off: ``fork`` works, and ``RLIMIT_NPROC`` (a dedicated uid, or the REPL's own
    user namespace when not root) or the cgroup's pids limit must stop it."""
    (_setup, hit, after), repl = run_steps(spec, runner, ["canary = 41", FORK_BOMB, "print(canary + 1)"], seccomp=False)
    assert after.stdout == "42\n", (after, hit)
    if runner[1]:
        assert hit.error and "Guard" in hit.error
        return
    rl, cg = repl.layers["rlimits"], repl.layers["cgroup"]
    if not (cg["active"] or "threads" in rl["detail"] or "tasks" in rl["detail"]):
        pytest.skip(f"no task limit on this host: rlimits: {rl['detail']}; cgroup: {cg['detail']}")
    assert hit.error is None and "stopped after" in hit.stdout and "BlockingIOError" in hit.stdout, hit
    assert int(hit.stdout.split()[2]) < 128, hit.stdout


def test_ten_gigabyte_allocation_fails(spec, runner):
    hit = attack(spec, runner, "x = bytearray(10 * 2**30)")
    assert hit.error and "MemoryError" in hit.error


def test_gradual_allocation_is_stopped(spec, runner):
    hit = attack(spec, runner, "chunks = []\nwhile True:\n    chunks.append(bytearray(2**20))")
    assert hit.error and "MemoryError" in hit.error


def test_infinite_loop_is_stopped_and_the_repl_restored(spec, runner):
    hit = attack(spec, runner, "while True:\n    pass", step_timeout_s=1.5)
    assert hit.timed_out and "wall-clock limit of 1.5 s" in hit.error
    assert "restored to its state after turn 1: canary" in hit.error


def test_stdout_flood_is_capped(spec, runner):
    hit = attack(spec, runner, "for i in range(300_000):\n    print('x' * 100)")
    assert "characters dropped by the REPL output cap" in hit.stdout and len(hit.stdout) < 11_000


def test_flood_of_the_raw_stdout_descriptor_is_limited(spec, runner):
    hit = attack(spec, runner, "import os\nblock = b'x' * 2**20\nfor i in range(1024):\n    os.write(1, block)")
    assert hit.error and ("File too large" in hit.error or "WorkspaceQuota" in hit.error), hit.error


def test_one_gigabyte_file_write_fails(spec, runner):
    hit = attack(spec, runner, "open('big.bin', 'wb').write(b'\\0' * 2**30)", memory_mb=1536)
    assert hit.error and ("File too large" in hit.error or "WorkspaceQuota" in hit.error), hit.error


def test_workspace_quota_over_many_files(spec, runner):
    code = "for i in range(40):\n    open(f'f{i}.bin', 'wb').write(b'x' * 2**20)"
    (_setup, hit, after), _ = run_steps(
        spec, runner, ["canary = 41", code, "import os\nprint(canary + 1)"], workspace_mb=16
    )
    assert hit.error and "WorkspaceQuotaExceeded" in hit.error and "removed" in hit.error
    assert after.error is None and after.stdout == "42\n"


def test_ctypes_calls_are_contained(spec, runner):
    target = f"/tmp/rlmx-battery-{secrets.token_hex(4)}"
    code = (
        "import ctypes\nlibc = ctypes.CDLL(None)\n"
        f"rc = libc.system(b'touch {target}')\n"
        "print('system:', rc)\n"
        "ctypes.string_at(0)  # a wild pointer: the process dies\n"
    )
    hit = attack(spec, runner, code)
    assert hit.error and not os.path.exists(target)
    if "Guard" not in hit.error:
        assert "died" in hit.error and "restored to its state after turn 1: canary" in hit.error


def test_signals_to_the_parent_and_the_orchestrator_fail(spec, runner):
    code = (
        "import os, signal\nerrors = []\n"
        f"for pid in (os.getppid(), {os.getpid()}, 1, -1, 0):\n"
        "    try:\n        os.kill(pid, signal.SIGKILL)\n"
        "    except OSError as e:\n        errors.append(type(e).__name__)\n"
        "assert len(errors) == 5, errors\n"
        "raise PermissionError(errors)\n"
    )
    hit = attack(spec, runner, code)
    assert hit.error and ("PermissionError" in hit.error or "Guard" in hit.error)


def test_another_executions_workspace_is_unreadable(spec, runner):
    async def go() -> tuple[StepResult, StepResult]:
        pol = policy(runner)
        async with make_repl(spec, policy=pol) as a, make_repl(spec, policy=pol) as b:
            assert isinstance(a, LocalREPL) and isinstance(b, LocalREPL)
            w = await a.run(f"open('secret.txt', 'w').write({SECRET!r})", turn=1, resolver=_resolver)
            assert w.error is None, w.error
            path = os.path.join(str(a.workspace), "secret.txt")
            r = await b.run(f"print(open({path!r}).read())", turn=1, resolver=_resolver)
            ls = await b.run(f"import os\nprint(os.listdir({str(a.workspace)!r}))", turn=2, resolver=_resolver)
            return r, ls

    r, ls = asyncio.run(go())
    assert r.error and SECRET not in r.stdout
    assert ls.error and "secret.txt" not in ls.stdout


def test_a_tampered_snapshot_is_refused(spec, runner):
    async def go() -> tuple[StepResult, StepResult, StepResult]:
        pol = policy(runner)
        async with make_repl(spec, policy=pol) as repl:
            await repl.run("x = 41\ndoc = context[0]", turn=1, resolver=_resolver)
            snap = repl.snapshot
        assert snap is not None and set(snap.vars) == {"x", "doc"}
        good = Snapshot.from_bytes(snap.to_bytes())
        async with make_repl(spec, policy=pol, snapshot=good) as repl:
            resumed = await repl.run("print(x + 1, doc[4:10])", turn=2, resolver=_resolver)
        bad = Snapshot.from_bytes(snap.to_bytes())
        data = bytearray(bad.vars["x"])
        data[-3] ^= 0x01
        bad.vars["x"] = bytes(data)
        async with make_repl(spec, policy=pol, snapshot=bad) as repl:
            refused = await repl.run("print('x' in dir())", turn=2, resolver=_resolver)
            after = await repl.run("print('works')", turn=3, resolver=_resolver)
        assert after.stdout == "works\n"
        return resumed, refused, after

    resumed, refused, _after = asyncio.run(go())
    assert resumed.error is None and resumed.stdout == "42 launch\n"
    assert any("resumed and restored to its state after turn 1" in n for n in resumed.notes)
    assert refused.stdout == "False\n"
    assert any("NOT restored" in n and "modified after it was sealed" in n for n in refused.notes), refused.notes


def test_a_hostile_pickle_runs_only_inside_the_sandbox(spec, runner):
    target = f"/tmp/rlmx-battery-{secrets.token_hex(4)}"
    code = (
        "import os\n"
        "class Evil:\n"
        "    def __reduce__(self):\n"
        f"        return (getattr(os, 'sys' + 'tem'), ('touch {target}',))\n"
        "evil = Evil()\n"
    )

    async def go() -> StepResult:
        pol = policy(runner)
        async with make_repl(spec, policy=pol) as repl:
            first = await repl.run(code, turn=1, resolver=_resolver)
            snap = repl.snapshot
        if first.error:  # the guard refused it
            return first
        assert snap is not None and "evil" in snap.vars
        async with make_repl(spec, policy=pol, snapshot=snap) as repl:
            return await repl.run("print(evil)", turn=2, resolver=_resolver)

    r = asyncio.run(go())
    assert not os.path.exists(target)
    if r.error is None:
        assert r.stdout != "0\n"  # os.system could not start a shell while restoring


def test_deep_recursion_is_contained(spec, runner):
    hit = attack(spec, runner, "def f(n):\n    return f(n + 1)\nf(0)")
    assert hit.error and "RecursionError" in hit.error
    crash = "import sys\nsys.setrecursionlimit(10**8)\ndef g(n):\n    return g(n + 1)\ng(0)"
    hit = attack(spec, runner, crash)
    assert hit.error and ("RecursionError" in hit.error or "died" in hit.error or "MemoryError" in hit.error)


def test_every_layer_this_host_allows_is_active(spec, runner):
    """What the battery ran under (printed for CI logs); netns, seccomp, landlock and
    no_new_privs are expected wherever the kernel has them."""

    async def go() -> dict[str, Any]:
        async with make_repl(spec, policy=policy(runner)) as repl:
            assert isinstance(repl, LocalREPL)
            return repl.layers

    layers = asyncio.run(go())
    for name, st in sorted(layers.items()):
        print(f"{runner[0]:<6} {name:<13} {'active' if st['active'] else 'MISSING'}  {st['detail']}")
    with contextlib.suppress(ImportError):
        from rlmx.sandbox import _landlock

        if _landlock.abi_version() >= 1:
            assert layers["landlock"]["active"], layers["landlock"]
    seccomp = layers["seccomp"]
    if not seccomp["active"]:
        # a host without libseccomp: the battery ran without that layer, which is a skip
        # with the reason (never a pass); any other reason is a failure
        assert "libseccomp" in seccomp["detail"], f"seccomp is not active: {seccomp['detail']}"
        pytest.skip(f"seccomp is not active on this host: {seccomp['detail']} (see rlmx doctor)")


def _local_layers(spec: ContextSpec) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        async with make_repl(spec, policy=policy(("local", False))) as repl:
            assert isinstance(repl, LocalREPL)
            return repl.layers

    return asyncio.run(go())


def test_a_dedicated_uid_runs_the_repl_when_root(spec):
    uid = _local_layers(spec)["uid"]
    if os.geteuid() != 0:
        # not a silent pass: the layer says it is off, and why
        assert not uid["active"] and "not root" in uid["detail"], uid
        pytest.skip(f"the uid layer needs root (this run is uid {os.getuid()}): {uid['detail']}")
    assert uid["active"], uid
    (r,), _ = run_steps(spec, ("local", False), ["import os\nprint(os.getuid(), os.getgid(), os.getgroups())"])
    got_uid, got_gid = (int(x) for x in r.stdout.split()[:2])
    assert got_uid not in (0, os.getuid()) and got_gid != 0 and r.stdout.rstrip().endswith("[]"), r.stdout


def test_the_cgroup_kills_a_repl_past_its_memory(spec):
    cgroup = _local_layers(spec)["cgroup"]
    if not cgroup["active"]:
        assert cgroup["detail"], cgroup
        pytest.skip(f"the cgroup layer needs root or a delegated cgroup v2 (uid {os.getuid()}): {cgroup['detail']}")
    hit = attack(spec, ("local", False), "chunks = []\nwhile True:\n    chunks.append(bytearray(2**20))")
    assert hit.error and "MemoryError" in hit.error, hit.error


@pytest.fixture(params=["private", "traversable"])
def two_tenants(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """One store holding corpus A (a secret) and corpus B: same blob folder, same FTS index.
    ``private``: under pytest's 0700 folder; ``traversable``: under a 0755 folder of /tmp,
    so that the sandbox's own layers (Landlock, bwrap binds) are all that stands between."""
    from rlmx.corpus import context_spec, corpus_from_texts
    from rlmx.store import open_store

    if request.param == "private":
        home = tmp_path / "home"
    else:
        home = Path(tempfile.mkdtemp(prefix="rlmx-battery-store-"))
        home.chmod(0o755)
        request.addfinalizer(lambda: shutil.rmtree(home, ignore_errors=True))
    store = open_store(home)
    a = corpus_from_texts({"secret-a.txt": f"Tenant A only: {SECRET} is the vault code.\n" * 3}, store)
    b = corpus_from_texts({"notes-b.txt": "Tenant B notes: the zebra crossing.\n" * 3}, store)
    yield SimpleNamespace(store=store, spec_a=context_spec(a, store), spec_b=context_spec(b, store))
    store.close()


def test_other_corpora_and_the_search_index_are_unreadable(two_tenants, runner):
    from rlmx.engine.resolver import ToolResolverImpl

    t = two_tenants
    spec_b, a_doc = t.spec_b, t.spec_a.docs[0]
    if runner[0] == "local" and not layer_active(spec_b, runner, "landlock"):
        pytest.skip("Landlock is unavailable on this host (see rlmx doctor)")
    resolver = ToolResolverImpl(SimpleNamespace(spec=spec_b))  # the orchestrator's answer: spec B only
    blobs = os.path.dirname(spec_b.docs[0].text_path)
    assert os.path.dirname(a_doc.text_path) == blobs and spec_b.index_path != t.spec_a.index_path
    index = str(t.spec_a.index_path)  # the other corpus's index blob (B's own is not granted either)
    attacks = {
        "list the blob folder": f"import os\nprint(os.listdir({blobs!r}))",
        "read another corpus's document": f"print(open({a_doc.text_path!r}).read())",
        "read the search index's bytes": f"print(open({index!r}, 'rb').read(64))",
        "query the search index": (
            "import sqlite3\n"
            f"db = sqlite3.connect('file:{index}?mode=ro&immutable=1', uri=True)\n"
            "print(db.execute('select doc_id from chunks').fetchall())"
        ),
    }
    for what, code in attacks.items():
        hit = attack(spec_b, runner, code, resolver=resolver)
        assert hit.error, (what, hit)
        assert any(e in hit.error for e in ("PermissionError", "FileNotFoundError", "OperationalError", "Guard")), (
            what,
            hit.error,
        )
        assert SECRET not in hit.stdout and os.path.basename(a_doc.text_path) not in hit.stdout, what
        assert a_doc.doc_id not in hit.stdout, what
    # a search request naming A's document returns nothing; B's own search and text still work
    forged = (
        f"print(context._ctx.searcher({{'query': 'vault code', 'k': 5, 'doc_ids': [{a_doc.doc_id!r}], "
        f"'windows': [[{a_doc.doc_id!r}, 0, 10**9]]}}))\n"
        "hits = context.search('vault zebra', 5)\n"
        "print([(h.doc_name, h.start, h.end) for h in hits], context.doc('notes-b.txt')[9:24])"
    )
    hit = attack(spec_b, runner, forged, resolver=resolver)
    assert hit.error is None, hit.error
    assert hit.stdout == "[]\n[('notes-b.txt', 0, 108)] notes: the zebr\n", hit.stdout


# -- what the REPL leaves for the orchestrator: its output log, its workspace, its messages ---------


def test_a_linked_log_name_neither_truncates_nor_leaks_a_file_outside(spec, runner, tmp_path):
    """The REPL's output goes to an unlinked file of the orchestrator, never to a name in the
    workspace: links planted there are not followed when the REPL is restarted (create,
    truncate, hand out) nor when its last output is reported."""
    victim = tmp_path / "victim.txt"
    victim.write_text(SECRET + "\n")
    victim.chmod(0o600)
    code = (
        "import os\n"
        "for name in ('.repl.log', 'repl.log', '.log', 'output.log'):\n"
        "    try:\n        os.unlink(name)\n    except OSError:\n        pass\n"
        f"    os.symlink({str(victim)!r}, name)\n"
        "os.write(2, b'last words of the REPL')\n"
        "os._exit(3)\n"
    )
    (_setup, hit, crash, after), _ = run_steps(
        spec,
        runner,
        ["canary = 41", code, "import os\nos.write(1, b'written to fd 1')\nos._exit(4)", "print(canary + 1)"],
    )
    assert after.error is None and after.stdout == "42\n", after
    assert hit.error and SECRET not in hit.error + hit.stdout
    if "Guard" not in hit.error:
        assert "died" in hit.error and "last words of the REPL" in hit.error, hit.error
        assert "written to fd 1" in (crash.error or "") and SECRET not in (crash.error or "")
    assert victim.read_text() == SECRET + "\n"  # not truncated, not written


def test_the_quota_cleanup_never_acts_through_a_link(spec, runner, tmp_path):
    """Over the quota the orchestrator removes the workspace's largest regular files, whatever
    their times say (the code can back-date them), and never truncates, removes or counts
    anything a link points to."""
    victim = tmp_path / "victim.txt"
    victim.write_text(SECRET + "\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "big.bin").write_bytes(b"y" * (20 << 20))
    code = (
        "import os\n"
        "for i in range(3):\n"
        "    open(f'old{i}.bin', 'wb').write(b'x' * (8 << 20))\n"
        "    os.utime(f'old{i}.bin', (1, 1))\n"
        f"os.symlink({str(victim)!r}, 'zz-link')\n"
        f"os.symlink({str(outside)!r}, 'zz-dir')\n"
        f"os.symlink({str(outside / 'big.bin')!r}, 'zz-big')\n"
    )
    hit = attack(spec, runner, code, workspace_mb=16)
    assert hit.error and ("WorkspaceQuotaExceeded" in hit.error or "Guard" in hit.error), hit.error
    if "Guard" not in hit.error:
        assert "removed from the workspace" in hit.error and "old" in hit.error and "zz-" not in hit.error
    assert victim.read_text() == SECRET + "\n"
    assert (outside / "big.bin").stat().st_size == 20 << 20


_CHANNEL = (
    "import os, stat\n"
    "def channel():\n"
    "    for fd in range(3, 1024):\n"
    "        try:\n"
    "            if stat.S_ISSOCK(os.fstat(fd).st_mode):\n"
    "                return fd\n"
    "        except OSError:\n"
    "            pass\n"
    "ch = channel()\n"
    "def send(data):\n"
    "    while data:\n"
    "        data = data[os.write(ch, data):]\n"
)
_PROTOCOL_ATTACKS = {
    # a 300 MB line: the orchestrator must stop reading past its line limit
    "huge-line": 'send(b\'{"type": "tool_request", "id": "x", "kind": "llm_query", "payload": {"prompt": "\')\n'
    "chunk = b'x' * (1 << 20)\nfor i in range(300):\n    send(chunk)\nsend(b'\"}}\\n')\n",
    # raw bytes announced with a message that never carries any
    "bytes-on-a-request": 'send(b\'{"type": "tool_request", "id": "x", "kind": "llm_query", '
    '"payload": {"prompt": "p"}, "_bytes": 314572800}\\n\')\n'
    "chunk = b'x' * (1 << 20)\nfor i in range(300):\n    send(chunk)\n",
    # a step result announcing more snapshot bytes than the snapshot limit
    "oversized-snapshot": 'send(b\'{"type": "step_result", "result": {}, "snapshot": {"changed": [["a", 1073741824]]}, '
    '"_bytes": 1073741824}\\n\')\n'
    "chunk = b'x' * (1 << 20)\nfor i in range(300):\n    send(chunk)\n",
    # a snapshot whose sizes do not match its bytes
    "malformed-snapshot": 'send(b\'{"type": "step_result", "result": {}, "snapshot": {"changed": [["canary", 99]]}, '
    '"_bytes": 5}\\nxxxxx\')\nimport time\ntime.sleep(30)\n',
    # JSON nested past the parser's recursion limit
    "deep-nesting": "send(b'[' * 1000000 + b'\\n')\nimport time\ntime.sleep(30)\n",
    # a step result with half a million wrong values (a costly validation error, a huge message)
    "bad-step-result": "items = b'{},' * 500000 + b'{}'\n"
    'send(b\'{"type": "step_result", "result": {"variables": [\' + items + b\']}}\\n\')\n'
    "import time\ntime.sleep(30)\n",
}


@pytest.mark.parametrize("name", sorted(_PROTOCOL_ATTACKS))
def test_protocol_abuse_stops_the_repl_without_costing_the_orchestrator(spec, runner, name):
    """Messages over the limits or malformed are never buffered whole: the REPL is stopped and
    restored, the model is told, ``run`` does not raise, and the orchestrator's memory stays
    small (the attacks send hundreds of megabytes)."""
    import tracemalloc

    tracemalloc.start()
    try:
        hit = attack(spec, runner, _CHANNEL + _PROTOCOL_ATTACKS[name], step_timeout_s=20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert hit.error, hit
    if "Guard" not in hit.error:
        assert "broke the sandbox protocol" in hit.error, hit.error
        assert "restored to its state after turn 1: canary" in hit.error, hit.error
        assert len(hit.error) < 2000
    assert peak < 120 << 20, f"the orchestrator buffered {peak >> 20} MB"


def test_a_malformed_tool_request_does_not_stop_the_step_clock(spec, runner):
    """A request whose payload is not an object is answered with an error (it used to leave
    the step's clock paused forever: an endless step)."""

    async def go() -> StepResult:
        repl = make_repl(spec, policy=policy(runner), step_timeout_s=2, output_cap_chars=10_000)
        async with repl:
            await repl.run("canary = 41", turn=1, resolver=_resolver)
            request = '{"type": "tool_request", "id": "x", "kind": "llm_query_batched", "payload": [1]}'
            code = _CHANNEL + f"send(b'{request}\\n')\nwhile True:\n    pass\n"
            hit = await asyncio.wait_for(repl.run(code, turn=2, resolver=_resolver), 30)
            after = await repl.run("print(canary + 1)", turn=3, resolver=_resolver)
            assert after.stdout == "42\n", after
            return hit

    hit = asyncio.run(go())
    assert hit.error and (hit.timed_out or "Guard" in hit.error), hit
