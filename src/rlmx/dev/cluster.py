"""A local scale-out cluster on 127.0.0.1 for development: PostgreSQL, an S3 endpoint, N API
servers and M workers, the topology of ``docs/deploy.md`` with the same commands.

::

    c = Cluster("/tmp/my-cluster")
    state = c.up(ClusterOptions(api_servers=2, workers=3, allowed_paths="/data"))
    state["api"][0]["url"], state["key"]          # http://127.0.0.1:PORT, rlmx_…
    c.status()                                    # [Check(name, ok, detail), …]
    c.down()

* PostgreSQL (:class:`~rlmx.dev.postgres.LocalPostgres`: Debian's binaries via initdb and
  pg_ctl) keeps its data in ``$TMPDIR/rlmx-cluster-<hash of the folder>``, a folder the
  ``postgres`` user can reach (it runs the server when we are root); the database is
  ``rlmx``.
* S3 is moto's server (:class:`~rlmx.dev.s3server.LocalS3`), bucket ``rlmx``; its objects live
  in memory, so ``down`` also discards the PostgreSQL data, which would refer to them.
* ``rlmx db upgrade`` runs once; ``rlmx keys create --tenant demo`` makes the key (its pepper
  is the shared ``secrets/key_pepper`` blob of the bucket).
* ``rlmx serve --no-worker`` and ``rlmx worker`` run detached (their own sessions) in the
  caller's working folder, each with its own ``RLMX_HOME`` under ``FOLDER/homes/``, logging
  to ``FOLDER/logs/NAME.log``, all with the same ``RLMX_DATABASE_URL``, ``RLMX_BLOB_URL``
  and ``AWS_*`` variables; the caller's other variables (provider keys,
  ``OPENAI_BASE_URL``, …) pass through.
* ``FOLDER/state.json`` (mode 0600: it holds the key) records pids, ports, URLs, folders and
  the variables to export.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from rlmx.dev import _procs
from rlmx.dev._procs import HOST
from rlmx.dev.pgctl import pg_running, pg_stop
from rlmx.errors import RlmxError

__all__ = ["Check", "Cluster", "ClusterError", "ClusterOptions", "default_dir", "pg_folder"]

STATE_FILE = "state.json"
TENANT = "demo"
DATABASE = "rlmx"
BUCKET = "rlmx"
_OWNED = {
    "RLMX_HOME", "RLMX_DATABASE_URL", "RLMX_BLOB_URL", "RLMX_CACHE_DIR", "RLMX_ALLOWED_PATHS",
    "RLMX_KEY_PEPPER", "RLMX_SANDBOX_SNAPSHOT_KEY",
}  # fmt: skip


class ClusterError(RlmxError):
    """The dev cluster cannot be started, or is already running; the message says what to do."""


@dataclass
class ClusterOptions:
    """What :meth:`Cluster.up` starts. ``base_port``: API server *i* listens on
    ``base_port + i`` (free ports when None); ``allowed_paths``: ``RLMX_ALLOWED_PATHS`` of the
    API servers; ``model``: ``RLMX_MODEL`` of every process (None: the caller's
    environment decides); ``ready_timeout_s``: how long to wait for the processes."""

    api_servers: int = 2
    workers: int = 3
    base_port: int | None = None
    allowed_paths: str = ""
    model: str | None = None
    ready_timeout_s: float = 120.0
    cwd: str | None = None


class Check(NamedTuple):
    """One line of :meth:`Cluster.status`: a component, whether it is up, and how it is."""

    name: str
    ok: bool
    detail: str


def default_dir() -> Path:
    """``$RLMX_CLUSTER_DIR``, else ``$RLMX_HOME/cluster``."""
    if os.environ.get("RLMX_CLUSTER_DIR"):
        return Path(os.environ["RLMX_CLUSTER_DIR"]).expanduser()
    from rlmx.config import Settings

    return Path(Settings().home).expanduser() / "cluster"


def pg_folder(folder: Path) -> Path:
    """Where the cluster in ``folder`` keeps PostgreSQL's data: under the system temporary
    folder, which the ``postgres`` user can reach (and short enough for its unix socket)."""
    digest = hashlib.sha256(str(Path(folder).resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"rlmx-cluster-{digest}"


def _tail(path: str | Path, n: int = 1500) -> str:
    try:
        return Path(path).read_text(errors="replace")[-n:].strip()
    except OSError:
        return ""


def _proc(entry: dict[str, Any]) -> _procs.Proc:
    return int(entry["pid"]), int(entry.get("start_time") or 0)


class Cluster:
    """The dev cluster whose state lives in ``folder`` (see the module doc)."""

    def __init__(self, folder: str | Path):
        self.dir = Path(folder).expanduser().resolve()
        self.state_path = self.dir / STATE_FILE

    # --- state -------------------------------------------------------------------------
    def read_state(self) -> dict[str, Any] | None:
        """The state file's content, or None when there is no cluster here."""
        try:
            data = json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise ClusterError(f"cannot read {self.state_path} ({e}): remove it, then run `rlmx dev cluster up`") from e
        return data if isinstance(data, dict) else None

    def _write(self, state: dict[str, Any]) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(state, f, indent=2)
        os.replace(tmp, self.state_path)

    @staticmethod
    def exports(state: dict[str, Any]) -> list[str]:
        """The ``export`` lines that let this shell's ``rlmx`` commands reach the cluster's
        store (and ``rlmx dev cluster`` find the cluster)."""
        env = {**state.get("env", {}), "RLMX_CLUSTER_DIR": state["dir"]}
        if state.get("key"):
            env["RLMX_KEY"] = state["key"]
        return [f"export {k}={shlex.quote(str(v))}" for k, v in env.items()]

    # --- up ----------------------------------------------------------------------------
    def up(self, opts: ClusterOptions, progress: Callable[[str], object] = lambda _m: None) -> dict[str, Any]:
        """Start the cluster and return its state; on any failure stop what was started and
        raise (:class:`ClusterError`, or the launchers' :class:`~rlmx.errors.RlmxError`)."""
        old = self.read_state()
        if old is not None:
            if any(c.ok for c in self.status(old)):
                urls = ", ".join(a["url"] for a in old.get("api", []))
                raise ClusterError(
                    f"a cluster is already running in {self.dir} (API servers {urls or 'starting'}): see "
                    f"`rlmx dev cluster status --dir {self.dir}`, or stop it with "
                    f"`rlmx dev cluster down --dir {self.dir}`"
                )
            self.down()  # a stale state file: clear what it names first
        if opts.api_servers < 1 or opts.workers < 0:
            raise ClusterError("a cluster needs at least 1 API server and 0 or more workers")
        ports = self._api_ports(opts)
        self.dir.mkdir(parents=True, exist_ok=True)
        logs = self.dir / "logs"
        logs.mkdir(exist_ok=True)
        pgdir = pg_folder(self.dir)
        state: dict[str, Any] = {
            "version": 1, "dir": str(self.dir), "started_at": datetime.now(UTC).isoformat(),
            "pg": {"folder": str(pgdir)}, "s3": None, "api": [], "workers": [], "env": {}, "key": None,
            "allowed_paths": opts.allowed_paths, "model": opts.model, "cwd": str(Path(opts.cwd or os.getcwd())),
        }  # fmt: skip
        self._write(state)
        try:
            self._start(state, opts, ports, progress)
        except BaseException:
            progress("start failed: stopping what was started")
            self.down()
            raise
        return state

    def _api_ports(self, opts: ClusterOptions) -> list[int]:
        if opts.base_port is None:
            ports: list[int] = []
            while len(ports) < opts.api_servers:
                p = _procs.free_port()
                if p not in ports:
                    ports.append(p)
            return ports
        ports = [opts.base_port + i for i in range(opts.api_servers)]
        if ports[-1] > 65535:
            raise ClusterError(f"--base-port {opts.base_port} leaves no room for {opts.api_servers} API servers")
        taken = [p for p in ports if not _procs.port_is_free(p)]
        if taken:
            raise ClusterError(
                f"port(s) {', '.join(map(str, taken))} on {HOST} are in use: stop what listens there, "
                "choose another --base-port, or omit it to use free ports"
            )
        return ports

    def _start(self, state: dict[str, Any], opts: ClusterOptions, ports: list[int], progress: Callable) -> None:
        from rlmx.dev.postgres import LocalPostgres
        from rlmx.dev.s3server import LocalS3

        logs, homes, pgdir = self.dir / "logs", self.dir / "homes", Path(state["pg"]["folder"])
        if pgdir.exists():  # left by a cluster that was not stopped: its data is stale
            pg_stop(pgdir)
            shutil.rmtree(pgdir)
        progress(f"starting PostgreSQL (data in {pgdir})")
        pg = LocalPostgres()
        pg.start(pgdir)
        state["pg"]["port"] = pg.port
        self._write(state)
        db_url = pg.create_database(DATABASE)
        state["pg"]["url"] = db_url
        progress("starting the S3 server (moto)")
        s3 = LocalS3()
        endpoint = s3.start(logs)
        assert s3.process is not None
        pid = s3.process.pid
        state["s3"] = {"endpoint": endpoint, "bucket": BUCKET, "pid": pid, "start_time": _procs.start_time(pid),
                       "log": str(logs / "moto-s3.log")}  # fmt: skip
        self._write(state)
        s3.create_bucket(BUCKET)
        state["env"] = {"RLMX_DATABASE_URL": db_url, "RLMX_BLOB_URL": f"s3://{BUCKET}/rlmx", **s3.env()}
        self._write(state)

        base = {k: v for k, v in os.environ.items() if k not in _OWNED and not k.startswith("AWS_")}
        base.update(state["env"], PYTHONUNBUFFERED="1")
        if opts.model:
            base["RLMX_MODEL"] = opts.model

        def env(name: str, **extra: str) -> dict[str, str]:
            (homes / name).mkdir(parents=True, exist_ok=True)
            return {**base, "RLMX_HOME": str(homes / name), **extra}

        progress("migrating the database (rlmx db upgrade)")
        self._rlmx(["db", "upgrade"], env("admin"))
        key = self._rlmx(["keys", "create", "--tenant", TENANT, "--name", "rlmx dev cluster"], env("admin")).strip()
        rlmx = [sys.executable, "-m", "rlmx.cli"]
        for i, port in enumerate(ports, 1):
            name = f"api-{i}"
            argv = [*rlmx, "serve", "--no-worker", "--host", HOST, "--port", str(port)]
            pid, started = _procs.spawn(
                argv, env(name, RLMX_ALLOWED_PATHS=opts.allowed_paths), logs / f"{name}.log", Path(state["cwd"])
            )
            state["api"].append({"name": name, "pid": pid, "start_time": started, "port": port,
                                 "url": f"http://{HOST}:{port}", "home": str(homes / name),
                                 "log": str(logs / f"{name}.log")})  # fmt: skip
            self._write(state)
        for i in range(1, opts.workers + 1):
            name = f"worker-{i}"
            pid, started = _procs.spawn([*rlmx, "worker"], env(name), logs / f"{name}.log", Path(state["cwd"]))
            state["workers"].append({"name": name, "pid": pid, "start_time": started, "home": str(homes / name),
                                     "log": str(logs / f"{name}.log")})  # fmt: skip
            self._write(state)
        progress(f"waiting for {len(ports)} API server(s) and {opts.workers} worker(s)")
        for entry in state["api"]:
            self._wait(entry, opts.ready_timeout_s, lambda e: _procs.http_status(e["url"] + "/health/ready") == 200)
        for entry in state["workers"]:
            self._wait(entry, opts.ready_timeout_s, lambda e: "rlmx worker " in _tail(e["log"], 100_000))
        state["key"] = key
        self._write(state)

    @staticmethod
    def _wait(entry: dict[str, Any], timeout_s: float, ready: Callable[[dict[str, Any]], bool]) -> None:
        def check() -> str | None:
            if ready(entry):
                return "ready"
            return None if _procs.alive(_proc(entry)) else "exited"

        outcome = _procs.wait_until(check, timeout_s)
        if outcome != "ready":
            what = "exited during start" if outcome == "exited" else f"was not ready within {timeout_s:.0f} s"
            raise ClusterError(f"{entry['name']} {what}; its log ({entry['log']}) ends with:\n{_tail(entry['log'])}")

    def _rlmx(self, args: list[str], env: dict[str, str]) -> str:
        cmd = f"rlmx {' '.join(args)}"
        try:
            done = subprocess.run(
                [sys.executable, "-m", "rlmx.cli", *args], env=env, cwd=self.dir, capture_output=True, text=True,
                timeout=180, check=False,
            )  # fmt: skip
        except (OSError, subprocess.SubprocessError) as e:
            raise ClusterError(f"`{cmd}` could not run: {e}") from e
        if done.returncode != 0:
            raise ClusterError(f"`{cmd}` failed (exit {done.returncode}): {done.stderr.strip()[-1500:]}")
        return done.stdout

    # --- status ------------------------------------------------------------------------
    def status(self, state: dict[str, Any] | None = None) -> list[Check]:
        """One :class:`Check` per component of the cluster (empty when there is none)."""
        state = state if state is not None else self.read_state()
        if state is None:
            return []
        checks: list[Check] = []
        pg = state.get("pg") or {}
        if pg.get("folder"):
            up = pg_running(Path(pg["folder"]))
            where = f"{HOST}:{pg.get('port', '?')}, data {pg['folder']}"
            checks.append(Check("postgres", up, f"{'running' if up else 'not running'} · {where}"))
        s3 = state.get("s3")
        if s3:
            up = _procs.alive(_proc(s3)) and _procs.http_status(s3["endpoint"] + "/") is not None
            checks.append(
                Check("s3", up, f"{'answering' if up else 'not answering'} · {s3['endpoint']} pid {s3['pid']}")
            )
        for a in state.get("api", []):
            live = _procs.alive(_proc(a))
            code = _procs.http_status(a["url"] + "/health/ready") if live else None
            how = "ready" if code == 200 else (f"not ready ({code or 'no answer'})" if live else "not running")
            checks.append(Check(a["name"], code == 200, f"{how} · {a['url']} pid {a['pid']} · log {a['log']}"))
        for w in state.get("workers", []):
            live = _procs.alive(_proc(w))
            checks.append(
                Check(w["name"], live, f"{'running' if live else 'not running'} · pid {w['pid']} · log {w['log']}")
            )
        return checks

    # --- down --------------------------------------------------------------------------
    def down(self, progress: Callable[[str], object] = lambda _m: None) -> list[str]:
        """Stop workers and API servers (SIGTERM, SIGKILL after 15 s), the S3 server and
        PostgreSQL; discard PostgreSQL's data and the processes' homes; remove the state
        file. Logs stay. Idempotent: returns what was stopped (empty when nothing ran)."""
        state = self.read_state() or {}
        done: list[str] = []
        procs = [*state.get("workers", []), *state.get("api", [])]
        live = [p for p in procs if _procs.alive(_proc(p))]
        if live:
            progress(f"stopping {', '.join(p['name'] for p in live)}")
            killed = _procs.stop_all([_proc(p) for p in live])
            done += [p["name"] + (" (killed)" if _proc(p) in killed else "") for p in live]
        s3 = state.get("s3")
        if s3 and _procs.alive(_proc(s3)):
            progress("stopping the S3 server")
            _procs.stop_all([_proc(s3)], grace_s=5.0)
            done.append("s3")
        pgdir = Path((state.get("pg") or {}).get("folder") or pg_folder(self.dir))
        if pg_running(pgdir):
            progress("stopping PostgreSQL")
            pg_stop(pgdir)
            done.append("postgres")
        if pgdir.exists() and pgdir == pg_folder(self.dir):  # only ever the folder we named
            shutil.rmtree(pgdir, ignore_errors=True)
        shutil.rmtree(self.dir / "homes", ignore_errors=True)
        self.state_path.unlink(missing_ok=True)
        return done
