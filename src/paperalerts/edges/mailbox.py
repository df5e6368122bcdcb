"""The only code that reads a mailbox: a Maildir folder or an IMAP(S) mailbox, named by the
``MAILBOX_URL`` setting:

- ``maildir:///var/mail/paperalerts`` (a Maildir: ``new/``, ``cur/``, ``tmp/``);
- ``imap://user:pass@host:143/INBOX`` or ``imaps://user:pass@host:993/INBOX`` (user and
  password percent-encoded; the path is the mailbox, INBOX when left out).

A `Mailbox` hands out the messages not yet processed, each as (key, bytes), and `done(key)`
marks one processed so it is not handed out again: a Maildir message moves into the
``.Processed`` subfolder (Maildir++), an IMAP message gets the ``$PaperalertsDone`` keyword
(and \\Seen). The pipeline also keeps a ledger of what it applied, so a message marked done
late (a crash between the two) is still never counted twice.
"""

from __future__ import annotations

import contextlib
import imaplib
import mailbox
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from paperalerts.errors import ConfigError, PaperAlertsError

DONE_FOLDER = "Processed"
DONE_KEYWORD = "$PaperalertsDone"


class MailboxError(PaperAlertsError):
    """The mailbox could not be read or updated (connection, login, missing folder)."""


class Mailbox(Protocol):
    def unprocessed(self) -> Iterator[tuple[str, bytes]]:
        """(key, raw message) for every message not yet marked done."""
        ...

    def done(self, key: str) -> None:
        """Mark one message processed."""
        ...

    def close(self) -> None: ...


class MaildirBox:
    """A Maildir on disk; processed messages move into its ``.Processed`` subfolder."""

    def __init__(self, path: Path) -> None:
        if not (path / "cur").is_dir() or not (path / "new").is_dir():
            raise ConfigError(f"MAILBOX_URL: {path} is not a Maildir (no cur/ and new/ inside)")
        self._box = mailbox.Maildir(path, create=False)
        self._done = self._box.add_folder(DONE_FOLDER)  # returns the existing one too

    def unprocessed(self) -> Iterator[tuple[str, bytes]]:
        for key in sorted(self._box.iterkeys()):
            try:
                yield key, self._box.get_bytes(key)
            except KeyError:  # removed by someone else meanwhile
                continue

    def done(self, key: str) -> None:
        try:
            msg = self._box.get_message(key)
        except KeyError:
            return
        msg.set_subdir("cur")
        msg.add_flag("S")
        self._done.add(msg)
        self._box.discard(key)

    def close(self) -> None:
        self._box.close()


class ImapBox:
    """An IMAP mailbox; processed messages get the ``$PaperalertsDone`` keyword."""

    def __init__(self, host: str, port: int, user: str, password: str, folder: str, *,
                 tls: bool, timeout: float = 30.0) -> None:
        try:
            cls = imaplib.IMAP4_SSL if tls else imaplib.IMAP4
            self._imap = cls(host, port, timeout=timeout)
            self._imap.login(user, password)
            typ, data = self._imap.select(_quote(folder))
        except (OSError, imaplib.IMAP4.error) as e:
            raise MailboxError(f"IMAP {host}:{port}: {e}") from e
        if typ != "OK":
            self.close()
            raise MailboxError(f"IMAP {host}:{port}: cannot open mailbox {folder!r}: {data!r}")

    def unprocessed(self) -> Iterator[tuple[str, bytes]]:
        try:
            typ, data = self._imap.uid("SEARCH", "UNKEYWORD", DONE_KEYWORD)
            uids = data[0].split() if typ == "OK" and data and data[0] else []
            for uid in uids:
                typ, parts = self._imap.uid("FETCH", uid, "(BODY.PEEK[])")
                for item in parts or []:
                    if isinstance(item, tuple) and len(item) == 2:
                        yield uid.decode(), item[1]
        except imaplib.IMAP4.error as e:
            raise MailboxError(f"IMAP: {e}") from e

    def done(self, key: str) -> None:
        try:
            self._imap.uid("STORE", key, "+FLAGS", f"({DONE_KEYWORD} \\Seen)")
        except imaplib.IMAP4.error as e:
            raise MailboxError(f"IMAP: marking message {key} processed: {e}") from e

    def close(self) -> None:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            self._imap.logout()


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def open_mailbox(url: str, *, timeout: float = 30.0) -> Mailbox:
    """The mailbox a MAILBOX_URL names; ConfigError saying what is wrong with the URL."""
    parts = urlsplit(url)
    if parts.scheme == "maildir":
        if not parts.path:
            raise ConfigError(f"MAILBOX_URL {url!r}: a maildir URL needs a path "
                              "(maildir:///var/mail/paperalerts)")
        return MaildirBox(Path(unquote(parts.path)))
    if parts.scheme in ("imap", "imaps"):
        if not parts.hostname or parts.username is None or parts.password is None:
            raise ConfigError(f"MAILBOX_URL: an IMAP URL needs user, password and host "
                              f"({parts.scheme}://user:pass@host:port/INBOX)")
        tls = parts.scheme == "imaps"
        folder = unquote(parts.path.lstrip("/")) or "INBOX"
        return ImapBox(parts.hostname, parts.port or (993 if tls else 143),
                       unquote(parts.username), unquote(parts.password), folder,
                       tls=tls, timeout=timeout)
    raise ConfigError(f"MAILBOX_URL {url!r}: the scheme must be maildir, imap or imaps")
