"""Finding the installation (issue 19): every command opens the database the environment, the
config file (PAPERALERTS_CONFIG, or paperalerts.toml in the working directory or above) or the
default names, says which one when it is missing, and never creates an empty one on the side;
`run` ticks at once. Real `python -m paperalerts` processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import free_port
from paperalerts.edges.config import ConfigError, load_settings


def cli(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("PAPERALERTS_")} | env
    return subprocess.run([sys.executable, "-m", "paperalerts", *args], cwd=cwd, env=e,
                          capture_output=True, text=True, timeout=120)


def test_commands_elsewhere_find_the_installation_or_name_the_database_they_looked_at(
    tmp_path: Path,
) -> None:
    """`init` in a directory makes paperalerts.db and a paperalerts.toml naming it; a command
    in a subdirectory uses that database; one in an unrelated directory fails naming the file it
    looked for and how to point at the installation, and creates nothing there;
    PAPERALERTS_CONFIG points at it from anywhere."""
    home, elsewhere = tmp_path / "install", tmp_path / "elsewhere"
    (home / "sub" / "dir").mkdir(parents=True)
    elsewhere.mkdir()
    assert cli(home, "init", "--no-defaults").returncode == 0
    assert (home / "paperalerts.db").exists() and (home / "paperalerts.toml").exists()
    added = cli(home / "sub" / "dir", "subscribers", "add", "ann@example.org", "--confirmed")
    assert added.returncode == 0, added.stderr
    assert not (home / "sub" / "dir" / "paperalerts.db").exists()
    lost = cli(elsewhere, "subscribers", "list")
    assert lost.returncode == 1
    assert f"no paperalerts database at {elsewhere / 'paperalerts.db'}" in lost.stderr
    assert "PAPERALERTS_CONFIG" in lost.stderr and "paperalerts.toml" in lost.stderr
    for cmd in (["status"], ["rules", "list"], ["sources", "list"], ["worker"], ["beat"]):
        assert cli(elsewhere, *cmd).returncode == 1, cmd
    assert list(elsewhere.iterdir()) == []  # no empty database, no broker file, no key
    found = cli(elsewhere, "subscribers", "list",
                PAPERALERTS_CONFIG=str(home / "paperalerts.toml"))
    assert found.returncode == 0 and found.stdout.startswith("ann@example.org\tactive")
    named = cli(elsewhere, "subscribers", "list",
                PAPERALERTS_DATABASE_URL=f"sqlite:///{home / 'paperalerts.db'}")
    assert named.stdout == found.stdout


def test_uninitialised_database_is_named(tmp_path: Path) -> None:
    """A database that exists but was never initialised is named in the error."""
    (tmp_path / "empty.db").touch()
    r = cli(tmp_path, "subscribers", "list", PAPERALERTS_DATABASE_URL="sqlite:///empty.db")
    assert r.returncode == 1 and "sqlite:///empty.db is not initialised" in r.stderr
    assert "PAPERALERTS_DATABASE_URL" in r.stderr


def test_config_file_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment beats the file, relative paths in the file are relative to it, an
    unknown name or a missing PAPERALERTS_CONFIG file is an error naming the file."""
    (tmp_path / "a" / "b").mkdir(parents=True)
    conf = tmp_path / "paperalerts.toml"
    conf.write_text('database_url = "sqlite:///data/pa.db"\noutbox_dir = "mail"\nsmtp_rate = 2\n')
    s = load_settings(tmp_path / "a" / "b", {})
    assert s.database_url == f"sqlite:///{tmp_path / 'data' / 'pa.db'}"
    assert s.outbox_dir == tmp_path / "mail" and s.smtp_rate == 2 and s.config == str(conf)
    monkeypatch.setenv("PAPERALERTS_SMTP_RATE", "5")
    s = load_settings(tmp_path, os.environ)
    assert s.smtp_rate == 5
    conf.write_text('databse_url = "x"\n')
    with pytest.raises(ConfigError, match="unknown setting 'databse_url'"):
        load_settings(tmp_path, {})
    with pytest.raises(ConfigError, match="not a file"):
        load_settings(tmp_path, {"PAPERALERTS_CONFIG": str(tmp_path / "nope.toml")})


@pytest.mark.slow
def test_run_ticks_at_start(tmp_path: Path) -> None:
    """`paperalerts run` with the default minute between ticks records its first scheduler run
    well before that minute is over."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERALERTS_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "paperalerts", "run", "--no-defaults", "--port", str(free_port())],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        started, ticked = time.monotonic(), False
        while time.monotonic() - started < 50 and not ticked:
            time.sleep(1)
            r = cli(tmp_path, "status", "--json")
            ticked = '"last_tick": "' in r.stdout
        assert ticked, "no tick within 50 s of the start (the first came after 60 s)"
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(60)
