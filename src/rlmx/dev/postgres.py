"""A throwaway local PostgreSQL server for tests and development clusters.

::

    pg = LocalPostgres()
    url = pg.start("/tmp/rlmx-pg")          # postgresql+psycopg://postgres@127.0.0.1:PORT/postgres
    db_url = pg.create_database("test_1")  # a fresh database on that server
    ...
    pg.stop()

The server is made with the PostgreSQL binaries ``initdb`` and ``pg_ctl`` (found on
``$PATH``, under ``$RLMX_PG_BIN``, or under ``/usr/lib/postgresql/*/bin``). It listens on
``127.0.0.1`` only, on a free port unless one is given, with its unix socket inside the
folder and ``trust`` authentication (no password: loopback only, for throwaway data).
PostgreSQL refuses to run as root: when we are root, the folder is given to the
``postgres`` user and the binaries run as that user (the folder must be reachable by it,
e.g. under ``/tmp``; pytest's own temporary folders are private to root).
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from rlmx.errors import RlmxError

__all__ = ["LocalPostgres", "PostgresUnavailableError", "find_pg_bin"]

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_START_TIMEOUT_S = 60


class PostgresUnavailableError(RlmxError):
    """A local PostgreSQL server cannot be started (binaries missing, no ``postgres`` user
    when running as root, initdb or pg_ctl failed); the message says what to do."""


def find_pg_bin() -> Path:
    """The folder holding ``initdb`` and ``pg_ctl``: ``$RLMX_PG_BIN``, else ``$PATH``, else
    the newest ``/usr/lib/postgresql/*/bin``. Raises :class:`PostgresUnavailableError`."""
    candidates: list[Path] = []
    if os.environ.get("RLMX_PG_BIN"):
        candidates.append(Path(os.environ["RLMX_PG_BIN"]))
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)

    def version(p: str) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", p)) or (0,)

    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)]
    for c in candidates:
        if (c / "initdb").is_file() and (c / "pg_ctl").is_file():
            return c
    raise PostgresUnavailableError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found on $PATH, in $RLMX_PG_BIN or under "
        "/usr/lib/postgresql/*/bin; install them (Debian/Ubuntu: apt-get install postgresql) or set "
        "RLMX_PG_BIN to the folder that holds them"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalPostgres:
    """One throwaway PostgreSQL server (a cluster in a folder). Use :meth:`start` and
    :meth:`stop`, or ``with LocalPostgres() as pg: pg.start(folder)``.

    ``fsync``: False (default) trades durability for speed — for tests only.
    Attributes after :meth:`start`: ``folder``, ``port``, ``url`` (the ``postgres`` database
    as a ``postgresql+psycopg://`` URL), ``bin``.
    """

    def __init__(self, *, fsync: bool = False):
        self.fsync = fsync
        self.folder: Path | None = None
        self.port: int | None = None
        self.url: str | None = None
        self.bin: Path | None = None
        self._user: pwd.struct_passwd | None = None

    # --- running the binaries ----------------------------------------------------------
    def _run(self, *args: str, timeout: float = _START_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        assert self.bin is not None
        extra: dict[str, Any] = {}
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        if self._user is not None:
            extra = {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}
            env["HOME"] = self._user.pw_dir
        try:
            return subprocess.run(
                [str(self.bin / args[0]), *args[1:]],
                capture_output=True,
                text=True,
                timeout=timeout,
                env=env,
                cwd=str(self.folder),
                check=False,
                **extra,
            )
        except (OSError, subprocess.SubprocessError) as e:
            raise PostgresUnavailableError(f"cannot run {args[0]} from {self.bin}: {e}") from e

    def _check(self, proc: subprocess.CompletedProcess[str], what: str) -> None:
        if proc.returncode != 0:
            log = self._log_tail()
            raise PostgresUnavailableError(
                f"{what} failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()[-2000:]}"
                + (f"\nserver log:\n{log}" if log else "")
            )

    def _log_tail(self) -> str:
        try:
            return (self.folder / "server.log").read_text(errors="replace")[-2000:] if self.folder else ""
        except OSError:
            return ""

    # --- lifecycle ---------------------------------------------------------------------
    def start(self, folder: str | Path, port: int | None = None) -> str:
        """Create a cluster in ``folder`` (``data/``, ``sock/``, ``server.log``; an existing
        cluster there is reused) and start it on ``127.0.0.1:port`` (a free port when None).
        Waits until it accepts connections; returns the ``postgresql+psycopg://`` URL of its
        ``postgres`` database. Raises :class:`PostgresUnavailableError`."""
        self.bin = find_pg_bin()
        root = Path(folder).resolve()
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.folder = root
        if os.geteuid() == 0:
            try:
                self._user = pwd.getpwnam("postgres")
            except KeyError as e:
                raise PostgresUnavailableError(
                    "PostgreSQL refuses to run as root and there is no 'postgres' user: create one "
                    "(useradd --system postgres) or run as an ordinary user"
                ) from e
            os.chown(root, self._user.pw_uid, self._user.pw_gid)
        probe = self._run("pg_ctl", "--version")
        if probe.returncode != 0 and self._user is not None:
            raise PostgresUnavailableError(
                f"the postgres user cannot use {root} ({probe.stderr.strip()}): choose a folder it can reach, "
                "e.g. under /tmp (tempfile.mkdtemp())"
            )
        data, sock = root / "data", root / "sock"
        sock.mkdir(exist_ok=True, mode=0o700)
        if self._user is not None:
            os.chown(sock, self._user.pw_uid, self._user.pw_gid)
        if not (data / "PG_VERSION").is_file():
            init = self._run(
                "initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"
            )
            self._check(init, f"initdb in {data}")
        self.port = port or _free_port()
        options = [
            "-c listen_addresses=127.0.0.1",
            f"-p {self.port}",
            f"-k {sock}",
            "-c max_connections=200",
        ]
        if not self.fsync:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        started = self._run(
            "pg_ctl", "-D", str(data), "-l", str(root / "server.log"), "-w", "-t", str(_START_TIMEOUT_S),
            "-o", " ".join(options), "start",
        )  # fmt: skip
        self._check(started, f"pg_ctl start (port {self.port})")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        return self.url

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``mode``: ``smart``, ``fast`` or ``immediate``); the folder is
        kept (remove it to discard the data). Does nothing when not started."""
        if self.folder is None or self.url is None:
            return
        self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", mode, "-w", "stop")
        self.url = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- databases ---------------------------------------------------------------------
    def _admin(self, sql: str) -> None:
        import psycopg

        if self.port is None or self.url is None:
            raise PostgresUnavailableError("the server is not started: call LocalPostgres.start(folder) first")
        try:
            with psycopg.connect(
                host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
            ) as conn:
                conn.execute(sql.encode())  # names are validated by the callers
        except psycopg.Error as e:
            raise PostgresUnavailableError(f"{sql!r} failed on 127.0.0.1:{self.port}: {e}") from e

    def create_database(self, name: str) -> str:
        """Create database ``name`` (``[a-z_][a-z0-9_]*``, at most 63 characters) and return
        its ``postgresql+psycopg://`` URL. Raises ``ValueError`` for a bad name,
        :class:`PostgresUnavailableError` when the server refuses."""
        if not _NAME.match(name):
            raise ValueError(f"database name {name!r}: use [a-z_][a-z0-9_]*, at most 63 characters")
        self._admin(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` even while clients are connected (``WITH (FORCE)``)."""
        if not _NAME.match(name):
            raise ValueError(f"database name {name!r}: use [a-z_][a-z0-9_]*, at most 63 characters")
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
