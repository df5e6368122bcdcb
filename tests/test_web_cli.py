"""`paperalerts admin create` and `paperalerts web`, as the real console script."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
from sqlalchemy import select

from conftest import free_port
from paperalerts.edges.db import make_engine, session_factory
from paperalerts.edges.db import models as m
from paperalerts.faces.web.auth import verify_password


def _env(db_url: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "PAPERALERTS_DATABASE_URL": db_url,
            "PAPERALERTS_SECRET_KEY": "k" * 32, **extra}


def _run(
    db_url: str, *args: str, stdin: str = "", **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "paperalerts", *args], input=stdin,
                          capture_output=True, text=True, env=_env(db_url, **extra), timeout=120)


def _hash(db_url: str, username: str) -> str:
    engine = make_engine(db_url)
    try:
        with session_factory(engine)() as s:
            return s.scalars(select(m.Admin.password_hash)
                             .where(m.Admin.username == username)).one()
    finally:
        engine.dispose()


def test_admin_create_reads_stdin_or_the_setting(sqlite_url: str) -> None:
    """--password-stdin creates the admin with an argon2 hash of that password; the
    PAPERALERTS_ADMIN_PASSWORD setting sets a new one; a short password is refused."""
    assert _run(sqlite_url, "init", "--no-defaults").returncode == 0
    r = _run(sqlite_url, "admin", "create", "ops", "--password-stdin",
             stdin="first password\n")
    assert r.returncode == 0 and "created admin ops" in r.stdout
    first = _hash(sqlite_url, "ops")
    assert first.startswith("$argon2id$") and verify_password(first, "first password")
    r = _run(sqlite_url, "admin", "create", "ops", PAPERALERTS_ADMIN_PASSWORD="second password")
    assert r.returncode == 0 and "updated the password of admin ops" in r.stdout
    assert verify_password(_hash(sqlite_url, "ops"), "second password")
    r = _run(sqlite_url, "admin", "create", "ops", "--password-stdin", stdin="short\n")
    assert r.returncode == 1 and "at least 8 characters" in r.stderr


def test_web_command_serves_the_app(sqlite_url: str) -> None:
    """`paperalerts web --port P` serves the sign-up page and the API schema on that port."""
    assert _run(sqlite_url, "init", "--no-defaults").returncode == 0
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "paperalerts", "web", "--host", "127.0.0.1", "--port", str(port)],
        env=_env(sqlite_url), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/signup", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        assert r.status_code == 200 and "Get new research papers" in r.text
        doc = httpx.get(f"http://127.0.0.1:{port}/api/v1/openapi.json", timeout=5).json()
        assert "/subscribers" in doc["paths"]
    finally:
        proc.terminate()
        proc.wait(timeout=20)
