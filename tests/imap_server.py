"""A real IMAP server for tests: Dovecot (Debian's dovecot-imapd) started from a generated
config in a temporary folder, plaintext login on a free loopback port, one user whose mail is
a Maildir under that folder."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

DOVECOT = "/usr/sbin/dovecot"
USER, PASSWORD = "bounces", "p@ss w0rd"


@dataclass
class ImapServer:
    port: int
    user: str
    password: str

    @property
    def url(self) -> str:
        from urllib.parse import quote

        secret = quote(self.password, safe="")
        return f"imap://{quote(self.user)}:{secret}@127.0.0.1:{self.port}/INBOX"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _owner() -> tuple[str, str]:
    """Root hands mail to the `dovecot` user (Dovecot refuses UID 0 for mail); anyone else runs
    everything as themselves."""
    if os.getuid() == 0:
        return "dovecot", "dovecot"
    return pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name


def start_dovecot(root: Path) -> tuple[subprocess.Popen[bytes], ImapServer]:
    if not Path(DOVECOT).exists():
        msg = "dovecot is not installed (apt-get install dovecot-imapd)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{msg} (CI=true: service tests must not skip)")
        pytest.skip(msg)
    user, group = _owner()
    port = _free_port()
    for d in ("run", "state", "home"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
    unprivileged = "" if os.getuid() == 0 else (
        f"default_internal_user = {user}\ndefault_login_user = {user}\n"
        f"default_internal_group = {group}\n")
    (root / "dovecot.conf").write_text(f"""\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
{unprivileged}passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={user} gid={group} home={root}/home/%u
}}
mail_location = maildir:~/Maildir
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
""")
    if os.getuid() == 0:
        shutil.chown(root / "home", user, group)
    proc = subprocess.Popen([DOVECOT, "-F", "-c", str(root / "dovecot.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            pytest.fail(f"dovecot exited at start: {err}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, ImapServer(port, USER, PASSWORD)
        except OSError:
            time.sleep(0.1)
    stop_dovecot(proc)
    pytest.fail("dovecot did not listen within 20 s")


def stop_dovecot(proc: subprocess.Popen[bytes]) -> None:
    """Stop the master we started (it stops its own children)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
