"""Issue 9, item 3: system calls through a foreign ABI fail at once instead of hanging.

A socket call through the x32 ABI (``0x40000000 | 41``) or through ``int 0x80`` (the i386
ABI, ``socketcall``) reaches the seccomp filter with a number or an architecture the filter
was not built for. They must fail with ``ENOSYS`` right away — the step reports the error
and the next step runs in the same REPL — never stop the calling thread and leave the step
hanging until its wall-clock limit. Real REPL processes, AST guard off so that ``ctypes``
reaches the kernel.
"""

from __future__ import annotations

import asyncio
import platform
import time
from pathlib import Path
from typing import Any

import pytest

from rlmx.sandbox import SandboxPolicy, StepResult, ToolRequest, make_repl
from rlmx.sandbox.testing import spec_from_texts

STEP_TIMEOUT_S = 60.0
"""The wall limit of each step: a hang would last this long."""
FAST_S = 20.0
"""A generous bound, far below the step limit: a call that fails at once ends well before."""

X32_SOCKET = """
import ctypes, errno
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
r = libc.syscall(ctypes.c_long(0x40000000 | 41), 2, 1, 0)  # x32 socket(AF_INET, SOCK_STREAM, 0)
e = ctypes.get_errno()
print("x32", r, errno.errorcode.get(e, e))
if r < 0:
    raise OSError(e, "x32 socket failed")
"""

INT80_SOCKETCALL = """
import ctypes, errno, mmap
# mov eax, 102 (i386 socketcall); mov ebx, 1 (SYS_SOCKET); xor ecx, ecx; int 0x80; ret
code = bytes([0xB8, 102, 0, 0, 0, 0xBB, 1, 0, 0, 0, 0x31, 0xC9, 0xCD, 0x80, 0xC3])
buf = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
buf.write(code)
addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
stub = ctypes.CFUNCTYPE(ctypes.c_int)(addr)
r = stub()
print("int80", r, errno.errorcode.get(-r, r))
if r < 0:
    raise OSError(-r, "int 0x80 socketcall failed")
"""


async def _resolver(req: ToolRequest) -> Any:
    return ""


def _run(tmp_path: Path, attack: str) -> tuple[StepResult, float, StepResult, dict[str, Any]]:
    spec = spec_from_texts(tmp_path / "store", {"a.txt": "hello\n"})

    async def go() -> tuple[StepResult, float, StepResult, dict[str, Any]]:
        repl = make_repl(spec, policy=SandboxPolicy(ast_guard=False), step_timeout_s=STEP_TIMEOUT_S)
        async with repl:
            await repl.run("canary = 41", turn=1, resolver=_resolver)
            t0 = time.monotonic()
            hit = await repl.run(attack, turn=2, resolver=_resolver)
            took = time.monotonic() - t0
            after = await repl.run("print(canary + 1)", turn=3, resolver=_resolver)
            return hit, took, after, dict(repl.layers)

    return asyncio.run(go())


@pytest.fixture(autouse=True)
def _x86_64() -> None:
    if platform.machine() != "x86_64":
        pytest.fail(f"these ABI checks need an x86_64 host, not {platform.machine()}")


@pytest.mark.parametrize("attack", [X32_SOCKET, INT80_SOCKETCALL], ids=["x32-socket", "int80-socketcall"])
def test_foreign_abi_syscalls_fail_at_once_and_the_repl_goes_on(tmp_path: Path, attack: str):
    hit, took, after, layers = _run(tmp_path, attack)
    assert layers["seccomp"]["active"], layers["seccomp"]
    assert not hit.timed_out, f"the step hung until its wall limit: {hit.error}"
    assert took < FAST_S, f"the step took {took:.1f} s (limit {STEP_TIMEOUT_S} s)"
    assert hit.error and "ENOSYS" in hit.stdout and "OSError" in hit.error, (hit.stdout, hit.error)
    assert after.error is None and after.stdout == "42\n", (after.stdout, after.error)
