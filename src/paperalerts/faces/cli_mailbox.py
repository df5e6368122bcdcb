"""``paperalerts mailbox poll``: read MAILBOX_URL for mailto unsubscribes, bounces (RFC 3464)
and complaints (RFC 5965), apply them, mark them processed. Also used by the tick."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import typer

from paperalerts.core.message import mail_domain_of
from paperalerts.edges.config import Settings, get_settings
from paperalerts.edges.mailbox import Mailbox, open_mailbox
from paperalerts.faces.cli_db import open_db
from paperalerts.pipeline.mailbox import MailboxConfig, PollOutcome, poll_mailbox

mailbox_help = "Read the mailbox of unsubscribe requests, bounces and complaints."


def mailbox_config(settings: Settings) -> MailboxConfig:
    return MailboxConfig(
        secret=settings.effective_secret_key(),
        mail_domain=settings.mail_domain or mail_domain_of(settings.mail_from),
        bounce_threshold=settings.bounce_threshold,
        bounce_address=settings.bounce_address,
    )


@contextmanager
def configured_mailbox(settings: Settings) -> Iterator[tuple[Mailbox, MailboxConfig] | None]:
    """The mailbox MAILBOX_URL names and its config, closed afterwards; None when unset."""
    if not settings.mailbox_url:
        yield None
        return
    box = open_mailbox(settings.mailbox_url)
    try:
        yield box, mailbox_config(settings)
    finally:
        box.close()


def summary(out: PollOutcome) -> str:
    """One tab-separated line: ``mailbox  N read  N unsubscribed  N hard  N soft
    N complaints  N ignored  N seen  N unauthenticated  N policy`` (ignored counts everything
    that changed nothing: unknown tokens, unauthenticated reports and sender-policy rejections
    too, which the last two fields count on their own)."""
    c = out.counts
    ignored = c["ignored"] + c["unknown"] + c["unauthenticated"] + c["policy"]
    return (f"mailbox\t{out.read} read\t{c['unsubscribed']} unsubscribed\t{c['hard']} hard\t"
            f"{c['soft']} soft\t{c['complaint']} complaints\t"
            f"{ignored} ignored\t{c['seen']} seen\t"
            f"{c['unauthenticated']} unauthenticated\t{c['policy']} policy")


def poll() -> None:
    """Apply every unprocessed message in MAILBOX_URL once and mark it processed."""
    from paperalerts.faces.cli_console import fail

    settings = get_settings()
    if not settings.mailbox_url:
        fail("PAPERALERTS_MAILBOX_URL is not set (maildir:///path or imaps://user:pass@host/INBOX)")
    with configured_mailbox(settings) as found:
        assert found is not None
        out = poll_mailbox(open_db(settings), found[0], found[1], now=datetime.now(UTC))
    typer.echo(summary(out))


def register(app: typer.Typer) -> None:
    mailbox_app = typer.Typer(no_args_is_help=True, help=mailbox_help)
    mailbox_app.command("poll")(poll)
    app.add_typer(mailbox_app, name="mailbox")
