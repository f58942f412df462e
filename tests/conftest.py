"""Test-wide guards: every test gets its own RLMX_HOME, no provider credentials from the
developer's environment, and no network connection except to loopback (tests must never
reach the internet; fakes live only at the LM boundary)."""

from __future__ import annotations

import ipaddress
import secrets
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from rlmx.dev.postgres import LocalPostgres
    from rlmx.dev.s3server import LocalS3

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

_PROVIDER_VARS = [
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_API_VERSION",
    "AZURE_OPENAI_ENDPOINT",
    "AZURE_OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "RLMX_MODEL",
    "RLMX_SUB_MODEL",
    "RLMX_PRICES_FILE",
]

_real_connect = socket.socket.connect


def _guarded_connect(self: socket.socket, address: object) -> None:
    if self.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
        host = str(address[0])
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            raise ConnectionRefusedError(f"tests may not connect to {host}: loopback only")
    _real_connect(self, address)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLMX_HOME", str(tmp_path / "rlmx-home"))
    for var in _PROVIDER_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)


def _missing_shared_data(path: Path) -> str:
    return (
        f"the shared data is missing: {path} is not a folder. The tests need ../shared/data beside "
        "the project (CI always has it); they fail rather than skip without it"
    )


def require_shared_data(*parts: str) -> Path:
    """``../shared/data/PARTS...``; fails the test (never skips) when it is missing."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.fail(_missing_shared_data(path), pytrace=False)
    return path


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` (the corpora and benchmark sources); fails when missing."""
    for name in ("state_union", "trec"):
        require_shared_data(name)
    return SHARED_DATA


@pytest.fixture
def state_union() -> Path:
    return require_shared_data("state_union")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test or module marked ``skipif(..., reason="...shared data...")`` fails instead of
    skipping when ../shared/data is missing: a missing corpus is a broken checkout, not a
    reason to pass silently (this runs before pytest's own skipif handling)."""
    for mark in item.iter_markers("skipif"):
        reason = str(mark.kwargs.get("reason", ""))
        if "shared" in reason.lower() and (mark.args[0] if mark.args else mark.kwargs.get("condition")):
            pytest.fail(
                f"{reason} under {SHARED_DATA}: the tests need ../shared/data beside the project "
                "(CI always has it); they fail rather than skip without it",
                pytrace=False,
            )


@pytest.fixture
def small_corpus(tmp_path: Path) -> Path:
    """Three small real-looking documents, one with non-ASCII text."""
    d = tmp_path / "corpus"
    d.mkdir()
    (d / "alpha.txt").write_text(
        "The Marshall Plan rebuilt Europe after the war.\nCongress debated foreign aid for months.\n" * 5,
        encoding="utf-8",
    )
    (d / "beta.md").write_text("# Farm report\n\nWheat prices fell in 1953. Tariffs rose.\n", encoding="utf-8")
    (d / "gamma.txt").write_text("Café society met in Zürich; the naïve plan failed in 1961.\n", encoding="utf-8")
    return d


# --- S3 (issue 8): a moto server per test session, a fresh bucket per test ----------------------
_AWS_VARS = [
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT",
    "AWS_ENDPOINT_URL_S3",
    "AWS_VIRTUAL_HOSTED_STYLE_REQUEST",
    "AWS_ALLOW_HTTP",
    "AWS_BUCKET",
    "AWS_BUCKET_NAME",
]


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalS3]:
    """A local S3 server (moto, subprocess on 127.0.0.1) shared by the session's tests.
    Fails (never skips) when moto is not installed: it is a dev dependency."""
    from rlmx.dev.s3server import LocalS3
    from rlmx.errors import RlmxError

    s3 = LocalS3()
    try:
        s3.start(tmp_path_factory.mktemp("s3"))
    except RlmxError as e:
        pytest.fail(f"cannot start the local S3 server: {e}")
    yield s3
    s3.stop()


@pytest.fixture
def s3_url(s3_server: LocalS3, monkeypatch: pytest.MonkeyPatch) -> str:
    """``s3://BUCKET/rlmx`` on a fresh bucket of :func:`s3_server`, with the ``AWS_*``
    variables pointing at it (set for this test only)."""
    bucket = f"rlmx-{uuid.uuid4().hex[:16]}"
    s3_server.create_bucket(bucket)
    for var in _AWS_VARS:
        monkeypatch.delenv(var, raising=False)
    for var, value in s3_server.env().items():
        monkeypatch.setenv(var, value)
    return f"s3://{bucket}/rlmx"


# --- PostgreSQL (issue 8): one throwaway server per test session, one database per test ---


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[LocalPostgres]:
    """A local PostgreSQL server (rlmx.dev.postgres) for the whole session, in a folder
    under the system temporary directory (the postgres user must reach it). Fails, never
    skips, when PostgreSQL cannot be started (install it: .ci/run does)."""
    from rlmx.dev.postgres import LocalPostgres, PostgresUnavailableError

    folder = tempfile.mkdtemp(prefix="rlmx-test-pg-")
    server = LocalPostgres()
    try:
        server.start(folder)
    except PostgresUnavailableError as e:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.fail(f"PostgreSQL tests need a local server: {e}", pytrace=False)
    yield server
    server.stop("immediate")
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def pg_url(postgres_server: LocalPostgres) -> Iterator[str]:
    """A fresh, empty database on the session's server: ``postgresql+psycopg://...``
    (dropped after the test, even with connections left open)."""
    name = f"test_{secrets.token_hex(6)}"
    url = postgres_server.create_database(name)
    yield url
    postgres_server.drop_database(name)


# --- the service (shared by the service tests; a module may override ``svc``) -------------
@pytest.fixture
def svc(tmp_path: Path, small_corpus: Path) -> Iterator[Any]:
    """A :class:`~rlmx.service.core.Service` on a fresh home that may read ``small_corpus``."""
    from service_support import make_service

    service = make_service(tmp_path / "home", allowed_paths=str(small_corpus))
    yield service
    service.close()


@pytest.fixture
def key(svc: Any) -> dict[str, str]:
    """The ``Authorization`` header of a fresh API key of tenant ``acme`` on ``svc``."""
    from service_support import auth

    k, _ = svc.keys.create("acme")
    return auth(k)
