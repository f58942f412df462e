"""A local S3-compatible server for tests and a dev cluster: moto's server mode in a
subprocess, bound to 127.0.0.1.

    s3 = LocalS3()
    endpoint = s3.start(tmp_folder)          # "http://127.0.0.1:PORT", answering
    s3.create_bucket("rlmx")
    os.environ.update(s3.env())              # AWS_ENDPOINT_URL, test credentials, region
    ...                                      # RLMX_BLOB_URL=s3://rlmx/prefix
    s3.stop()

Or from a shell: ``python -m rlmx.dev.s3server --port 9000 --bucket rlmx``. Moto keeps
objects in memory: they are gone when the server stops. It needs the ``moto[server]``
package (the project's dev dependency group).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from rlmx.errors import ConfigError, RlmxError

__all__ = ["LocalS3", "main"]

_HOST = "127.0.0.1"


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((_HOST, 0))
        return int(s.getsockname()[1])


class LocalS3:
    """One moto S3 server subprocess on ``127.0.0.1``.

    :meth:`start` launches it and returns its endpoint URL once it answers HTTP;
    :meth:`create_bucket` makes a bucket; :meth:`env` gives the ``AWS_*`` variables that
    point clients (obstore, boto3) at it; :meth:`stop` ends it. Also a context manager
    (``with LocalS3() as s3: s3.start(folder)``).
    """

    access_key_id = "rlmx-test"
    secret_access_key = "rlmx-test-secret"  # moto accepts any credentials
    region = "us-east-1"

    def __init__(self) -> None:
        self.endpoint: str | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    def __enter__(self) -> LocalS3:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(
        self, folder: str | Path, port: int | None = None, *, timeout_s: float = 30.0, authenticate: bool = False
    ) -> str:
        """Start the server (its log is ``folder/moto-s3.log``) on ``port`` (a free one when
        None) and return ``http://127.0.0.1:PORT`` once it answers. ``authenticate``: check
        request signatures (moto's ``INITIAL_NO_AUTH_ACTION_COUNT=0``; only moto's own test
        credentials then pass, so :meth:`create_bucket` does not work). Raises
        :class:`~rlmx.errors.ConfigError` when moto is not installed,
        :class:`~rlmx.errors.RlmxError` when it does not come up within ``timeout_s`` seconds."""
        if self.process is not None:
            raise RlmxError(f"LocalS3 is already running at {self.endpoint}; stop() it first")
        if importlib.util.find_spec("moto") is None or importlib.util.find_spec("moto.server") is None:
            raise ConfigError(
                "the local S3 server needs moto's server mode: install the dev dependencies "
                "(`sh scripts/uv sync --group dev`, or `pip install 'moto[server]'`)"
            )
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.log_path = folder / "moto-s3.log"
        port = port or _free_port()
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", _HOST, "-p", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=folder,
                env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"} if authenticate else None,
            )
        self.endpoint = f"http://{_HOST}:{port}"
        try:
            self._wait(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self.endpoint

    def _wait(self, timeout_s: float) -> None:
        assert self.process is not None and self.endpoint is not None
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise RlmxError(
                    f"the moto S3 server exited with status {self.process.returncode} before answering; "
                    f"see {self.log_path} (is the port taken?)"
                )
            try:
                with _OPENER.open(self.endpoint + "/", timeout=1.0) as r:
                    r.read()
                return
            except urllib.error.HTTPError:
                return  # an HTTP answer (403 when authenticating): it is up
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RlmxError(
                    f"the moto S3 server at {self.endpoint} did not answer in {timeout_s} s; see {self.log_path}"
                )
            time.sleep(0.05)  # poll interval while the subprocess starts

    def stop(self) -> None:
        """Stop the server (terminate, then kill after 5 s); no-op when not running."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def create_bucket(self, name: str) -> None:
        """Create bucket ``name`` (an error when it exists). Raises ``RlmxError`` when the
        server is not running or refuses."""
        if self.process is None or self.endpoint is None:
            raise RlmxError("LocalS3 is not running: call start(folder) first")
        req = urllib.request.Request(f"{self.endpoint}/{name}", method="PUT", data=b"")
        try:
            with _OPENER.open(req, timeout=10) as r:
                r.read()
        except urllib.error.HTTPError as e:
            body = e.read()[:300]
            raise RlmxError(f"the local S3 server refused to create bucket {name!r}: {e.code} {body!r}") from e

    def env(self) -> dict[str, str]:
        """The ``AWS_*`` variables that point S3 clients at this server (test credentials)."""
        if self.endpoint is None:
            raise RlmxError("LocalS3 is not running: call start(folder) first")
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
        }


def main(argv: list[str] | None = None) -> int:
    """``python -m rlmx.dev.s3server [--folder F] [--port P] [--bucket B]``: run a local S3
    server until interrupted, printing the variables to export."""
    ap = argparse.ArgumentParser(prog="python -m rlmx.dev.s3server", description=main.__doc__)
    ap.add_argument("--folder", default=".", help="folder for the server's log")
    ap.add_argument("--port", type=int, default=None)
    ap.add_argument("--bucket", action="append", default=[], help="bucket to create (repeatable)")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the server on kill, too
    with LocalS3() as s3:
        s3.start(args.folder, args.port)
        for b in args.bucket:
            s3.create_bucket(b)
        for k, v in s3.env().items():
            print(f"export {k}={v}")
        if args.bucket:
            print(f"export RLMX_BLOB_URL=s3://{args.bucket[0]}/rlmx")
        sys.stdout.flush()
        try:
            assert s3.process is not None
            s3.process.wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
