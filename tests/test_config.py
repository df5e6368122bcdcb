"""Settings: the signing key's rules (SECRET_KEY is required outside embedded mode)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from paperalerts.edges.config import Settings
from paperalerts.errors import ConfigError


def test_secret_key_setting_wins() -> None:
    """A configured SECRET_KEY is used as is, in any mode."""
    s = Settings(secret_key="k" * 40, broker_url="redis://x/0")
    assert s.effective_secret_key() == "k" * 40


@pytest.mark.parametrize(
    "overrides",
    [{"broker_url": "redis://127.0.0.1:6379/0"}, {"database_url": "postgresql+psycopg://u@h/db"}],
)
def test_secret_key_required_outside_embedded_mode(overrides: dict[str, str]) -> None:
    """With a broker or a server database, a missing SECRET_KEY is a clear ConfigError: every
    process must sign with the same key."""
    with pytest.raises(ConfigError, match="PAPERALERTS_SECRET_KEY is required"):
        Settings(secret_key="", **overrides).effective_secret_key()


def test_embedded_mode_keeps_a_random_key_beside_the_database(tmp_path: Path) -> None:
    """Embedded (SQLite, no broker) without SECRET_KEY: a random key, made once, kept in a file
    only its owner can read, the same for every process on that database; another database gets
    another key."""
    s = Settings(secret_key="", broker_url="", database_url=f"sqlite:///{tmp_path / 'a.db'}")
    key = s.effective_secret_key()
    assert len(key) == 64 and key == s.effective_secret_key()
    key_file = tmp_path / "a-secret.key"
    assert key_file.read_text() == key
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    other = Settings(secret_key="", broker_url="", database_url=f"sqlite:///{tmp_path / 'b.db'}")
    assert other.effective_secret_key() != key


def _race_for_key(barrier: object, url: str, out: object) -> None:
    from paperalerts.edges.config import _embedded_secret

    barrier.wait()  # type: ignore[attr-defined]
    out.put(_embedded_secret(url))  # type: ignore[attr-defined]


def test_processes_starting_at_once_never_read_a_half_written_key(tmp_path: Path) -> None:
    """Many processes asking for the embedded key of a new database at the same instant all get
    the same complete key: the file appears whole (written aside, then linked into place)."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    procs_per_round, rounds = 8, 40
    for r in range(rounds):
        url = f"sqlite:///{tmp_path / f'r{r}.db'}"
        barrier, out = ctx.Barrier(procs_per_round), ctx.Queue()
        procs = [
            ctx.Process(target=_race_for_key, args=(barrier, url, out))
            for _ in range(procs_per_round)
        ]
        for p in procs:
            p.start()
        keys = [out.get(timeout=30) for _ in procs]
        for p in procs:
            p.join(30)
        assert len(set(keys)) == 1 and len(keys[0]) == 64, f"round {r}: {keys}"
        assert (tmp_path / f"r{r}-secret.key").read_text() == keys[0]
