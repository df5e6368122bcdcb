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
