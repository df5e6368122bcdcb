"""Shared test fixtures: fixture files, real services, a real local HTTP server.

Services: a test that needs Redis or PostgreSQL runs against the real server when it answers. When
it does not, the test is skipped with the reason, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from hypothesis import settings as hypothesis_settings

# Hypothesis fails an example that takes over 200 ms by default, so on a loaded machine (CI, or
# this 2-core box shared by many runs) a property test passed or failed by chance. Budgets are
# bounded by max_examples instead; a parse that hangs is caught by the tests' own time limits.
hypothesis_settings.register_profile("paperalerts", deadline=None)
hypothesis_settings.load_profile("paperalerts")

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(os.environ.get("PAPERALERTS_FIXTURES_DIR", REPO.parent / "shared" / "fixtures"))
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

POSTGRES_URL = os.environ.get(
    "PAPERALERTS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
# One Redis server for every test; its databases 13-15 are the tests' (set another server, e.g.
# redis://127.0.0.1:6381, to run two checkouts' suites side by side without flushing each other).
REDIS_SERVER = os.environ.get("PAPERALERTS_TEST_REDIS", "redis://127.0.0.1:6379").rstrip("/")
_REDIS = urlsplit(REDIS_SERVER)
REDIS_HOST, REDIS_PORT = _REDIS.hostname or "127.0.0.1", _REDIS.port or 6379
REDIS_URL = f"{REDIS_SERVER}/15"


def require_redis() -> None:
    """The tests' Redis server answers (fails under CI, else skips)."""
    require_service("Redis", REDIS_HOST, REDIS_PORT)


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip (or, under CI=true, fail) when the named service does not answer."""
    if _answers(host, port):
        return
    msg = f"{name} is not answering on {host}:{port}"
    if IN_CI:
        pytest.fail(f"{msg} (CI=true: service tests must not skip)")
    pytest.skip(msg)


def fixture_file(rel: str) -> Path:
    """A path under the shared fixtures folder; skips with a clear reason when it is absent."""
    path = FIXTURES / rel
    if not path.exists():
        if IN_CI:
            pytest.fail(f"fixture {path} is missing (set PAPERALERTS_FIXTURES_DIR)")
        pytest.skip(f"fixture {path} is missing (set PAPERALERTS_FIXTURES_DIR)")
    return path


@pytest.fixture
def fixtures_dir() -> Path:
    """The shared fixtures folder (PAPERALERTS_FIXTURES_DIR, default ../shared/fixtures)."""
    if not FIXTURES.is_dir():
        if IN_CI:
            pytest.fail(f"fixtures folder {FIXTURES} is missing")
        pytest.skip(f"fixtures folder {FIXTURES} is missing (set PAPERALERTS_FIXTURES_DIR)")
    return FIXTURES


@pytest.fixture
def redis_url() -> str:
    """A real Redis database (db 15), flushed before the test."""
    require_redis()
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    client.close()
    return REDIS_URL


@pytest.fixture
def postgres_url() -> str:
    """The real PostgreSQL server's test database."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    return POSTGRES_URL


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def static_server(fixtures_dir: Path) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 serving the shared fixtures folder; yields its base URL."""
    handler = lambda *a, **kw: _QuietHandler(*a, directory=str(fixtures_dir), **kw)  # noqa: E731
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database file (WAL) under the test's tmp dir."""
    return f"sqlite:///{tmp_path / 'paperalerts.db'}"


@pytest.fixture
def fresh_postgres_url(postgres_url: str) -> Iterator[str]:
    """A brand-new PostgreSQL database on the real server, dropped after the test."""
    import uuid

    from sqlalchemy import create_engine, text

    name = f"pa_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = postgres_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """A fresh, empty database URL: each test using it runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("fresh_postgres_url"))


def _migrated(url: str) -> Iterator[object]:
    from paperalerts.edges.db import make_engine, session_factory, upgrade

    engine = make_engine(url)
    upgrade(engine)
    try:
        yield session_factory(engine)
    finally:
        engine.dispose()


@pytest.fixture
def db(database_url: str) -> Iterator[object]:
    """A session factory on a freshly migrated database (SQLite and PostgreSQL)."""
    yield from _migrated(database_url)


@pytest.fixture
def factory(sqlite_url: str) -> Iterator[object]:
    """A session factory on a freshly migrated SQLite database (SQLite only, for tests whose
    subject is not storage)."""
    yield from _migrated(sqlite_url)


@pytest.fixture
def sink() -> Iterator[object]:
    """A real SMTP server (aiosmtpd) on a free local port, collecting what it receives."""
    from smtp_sink import SMTPSink

    with SMTPSink() as s:
        yield s


@pytest.fixture
def mailer(sink: object) -> Iterator[object]:
    """The real SMTP mailer pointed at `sink`."""
    from paperalerts.edges.mailer import SMTPMailer

    m = SMTPMailer(sink.url, timeout=5)  # type: ignore[attr-defined]
    yield m
    m.close()
