"""Pre-execution checks of model-written code, run by the orchestrator before a step.

:func:`check` returns an error observation, or None when the code may run:

* a syntax error — nothing runs; the model sees the usual ``SyntaxError`` message;
* an obviously forbidden construct (the AST guard): importing process, network, native-call
  or dynamic-import modules (``subprocess``, ``socket``, ``ctypes``, ``importlib``...),
  ``os.system``/``os.exec*``/``os.fork``/``os.kill`` and friends, ``eval``/``exec``/
  ``compile``/``__import__``, and the dunder escapes (``__subclasses__``, ``__globals__``,
  ``__builtins__``, frame attributes...).

The guard saves turns by explaining early what the sandbox would refuse anyway; it is not the
security boundary — the operating-system layers are (:mod:`rlmx.sandbox._layers`). It only
parses the code (``ast``), never runs it.
"""

from __future__ import annotations

import ast
import traceback

__all__ = ["FORBIDDEN_MODULES", "check"]

FORBIDDEN_MODULES = frozenset(
    [
        "subprocess",
        "multiprocessing",
        "socket",
        "socketserver",
        "ssl",
        "select",
        "selectors",
        "asyncio.subprocess",
        "ctypes",
        "_ctypes",
        "cffi",
        "pty",
        "tty",
        "termios",
        "fcntl",
        "pexpect",
        "http.client",
        "http.server",
        "urllib.request",
        "urllib3",
        "requests",
        "httpx",
        "aiohttp",
        "ftplib",
        "smtplib",
        "poplib",
        "imaplib",
        "nntplib",
        "telnetlib",
        "xmlrpc",
        "paramiko",
        "_posixsubprocess",
        "_socket",
        "_ssl",
        "importlib",
        "imp",
        "runpy",
        "code",
        "codeop",
        "pdb",
        "gc",
    ]
)
_OS_CALLS = frozenset(
    [
        "system",
        "popen",
        "execl",
        "execle",
        "execlp",
        "execlpe",
        "execv",
        "execve",
        "execvp",
        "execvpe",
        "spawnl",
        "spawnle",
        "spawnlp",
        "spawnlpe",
        "spawnv",
        "spawnve",
        "spawnvp",
        "spawnvpe",
        "fork",
        "forkpty",
        "vfork",
        "kill",
        "killpg",
        "posix_spawn",
        "posix_spawnp",
        "setuid",
        "setgid",
        "seteuid",
        "setegid",
        "setreuid",
        "setregid",
        "setresuid",
        "setresgid",
        "chroot",
        "pidfd_open",
        "plock",
        "startfile",
    ]
)
_ESCAPES = frozenset(
    [
        "__subclasses__",
        "__globals__",
        "__builtins__",
        "__code__",
        "__closure__",
        "__mro__",
        "__bases__",
        "__base__",
        "__import__",
        "__loader__",
        "__spec__",
        "__getattribute__",
        "__reduce__",
        "__reduce_ex__",
        "__init_subclass__",
        "__class_getitem__",
        "f_globals",
        "f_locals",
        "f_builtins",
        "f_back",
        "f_code",
        "gi_frame",
        "gi_code",
        "cr_frame",
        "cr_code",
        "ag_frame",
        "ag_code",
        "tb_frame",
        "tb_next",
        "func_globals",
        "_getframe",
    ]
)
_CALLS = frozenset(("eval", "exec", "compile", "__import__", "breakpoint", "execfile"))
_WHY_MODULE = (
    "the REPL has no processes, network or native calls; use llm_query/llm_query_batched/rlm_query for "
    "sub-calls and `context` for the documents"
)


class _Reject(Exception):
    def __init__(self, node: ast.AST, what: str, why: str) -> None:
        super().__init__(what)
        self.line = getattr(node, "lineno", 0)
        self.what = what
        self.why = why


def _forbidden(module: str) -> bool:
    parts = module.split(".")
    return any(".".join(parts[: i + 1]) in FORBIDDEN_MODULES for i in range(len(parts)))


class _Guard(ast.NodeVisitor):
    def __init__(self) -> None:
        self.os_names = {"os", "posix"}

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            if _forbidden(a.name):
                raise _Reject(node, f"`import {a.name}`", _WHY_MODULE)
            if a.name in ("os", "posix") and a.asname:
                self.os_names.add(a.asname)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        mod = node.module or ""
        if node.level == 0 and _forbidden(mod):
            raise _Reject(node, f"`from {mod} import ...`", _WHY_MODULE)
        for a in node.names:
            if node.level == 0 and _forbidden(f"{mod}.{a.name}"):
                raise _Reject(node, f"`from {mod} import {a.name}`", _WHY_MODULE)
            if mod in ("os", "posix") and a.name in _OS_CALLS:
                raise _Reject(node, f"`from {mod} import {a.name}`", "the REPL cannot start or signal processes")
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.value, ast.Name) and node.value.id in self.os_names and node.attr in _OS_CALLS:
            raise _Reject(node, f"`{node.value.id}.{node.attr}`", "the REPL cannot start or signal processes")
        if node.attr in _ESCAPES:
            raise _Reject(node, f"the attribute `{node.attr}`", "introspection escapes are not allowed")
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in ("__builtins__", "__import__", "__loader__", "__spec__"):
            raise _Reject(node, f"the name `{node.id}`", "introspection escapes are not allowed")

    def visit_Call(self, node: ast.Call) -> None:
        f = node.func
        if isinstance(f, ast.Name) and f.id in _CALLS:
            raise _Reject(node, f"`{f.id}(...)`", "code built at run time cannot be checked; write it out directly")
        if isinstance(f, ast.Name) and f.id in ("getattr", "setattr", "delattr", "hasattr") and len(node.args) >= 2:
            arg = node.args[1]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value in _ESCAPES:
                raise _Reject(node, f"`{f.id}(..., {arg.value!r})`", "introspection escapes are not allowed")
        self.generic_visit(node)


def check(code: str, filename: str = "<repl>", *, guard: bool = True) -> str | None:
    """Return the observation for code that must not run (syntax error, forbidden
    construct), or None. ``guard=False`` checks the syntax only."""
    try:
        tree = ast.parse(code, filename, "exec")
    except (SyntaxError, ValueError) as e:
        msg = "".join(traceback.format_exception_only(type(e), e)).rstrip()
        return f"{msg}\n(nothing was run)"
    if not guard:
        return None
    try:
        _Guard().visit(tree)
    except _Reject as r:
        return (
            f"GuardError: line {r.line}: {r.what} is not allowed in the REPL: {r.why}. "
            "Nothing was run; rewrite the block without it."
        )
    except RecursionError:
        return "GuardError: the code is nested too deeply to check. Nothing was run."
    return None
