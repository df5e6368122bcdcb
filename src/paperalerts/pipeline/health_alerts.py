"""The admins' health emails: one email per check and event, however many incidents it covers.

An outage that breaks five sources at once is one email listing the five ("ALERT: 5 sources
(...)"), and their recovery one more; times are shown in the admins' zone (ADMIN_TIMEZONE), as
"today 09:30 CET" or "Mon 2 Mar 2026 09:30 CET", never as raw ISO stamps. Which incidents to
announce, and the bookkeeping, are `paperalerts.pipeline.health`'s.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from paperalerts.core.health import Announced, Incident, group_title, human_duration, human_time
from paperalerts.core.message import build_message
from paperalerts.core.render import Footer, render_email
from paperalerts.edges.mailer import Mailer


@dataclass(frozen=True)
class AlertMailer:
    """Sends the health emails to `admin_emails` through `mailer`."""

    mailer: Mailer
    admin_emails: tuple[str, ...]
    mail_from: str
    mail_domain: str
    base_url: str
    postal_address: str = ""
    timezone: str = "UTC"

    def opened(self, found: Sequence[Incident], now: datetime) -> int:
        """One email announcing every incident in `found`; returns how many admins accepted it.
        Raises DeliveryError from the first that did not."""
        items = [
            {"title": i.title, "detail": i.detail, "since": self._time(i.since, now)}
            for i in found
        ]
        ident = "open\0" + "\0".join(f"{i.key}@{i.since}" for i in found)
        return self._send("opened", group_title([i.key for i in found]), items, now, ident)

    def recovered(self, gone: Sequence[Announced], now: datetime) -> int:
        """One email announcing that every incident in `gone` is over."""
        items = [
            {
                "title": a.title,
                "since": self._time(a.opened_at, now),
                "lasted": human_duration(now - a.opened_at) if a.opened_at else "",
            }
            for a in gone
        ]
        ident = "recovered\0" + "\0".join(f"{a.key}@{a.opened_at}" for a in gone)
        return self._send("recovered", group_title([a.key for a in gone]), items, now, ident)

    def _time(self, t: datetime | None, now: datetime) -> str:
        return human_time(t, now, self.timezone) if t else ""

    def _send(
        self, event: str, title: str, items: list[dict[str, Any]], now: datetime, ident: str
    ) -> int:
        """Render and send one email to every admin. Its Message-ID derives from `ident` (the
        incidents and event), so a retried announcement carries the same one."""
        rendered = render_email(
            "ops_alert",
            {
                "event": event,
                "title": title,
                "items": items,
                "noticed": human_time(now, now, self.timezone),
                "admin_url": f"{self.base_url.rstrip('/')}/admin",
                "footer": Footer(
                    reason="your address is in ADMIN_EMAILS of this paperalerts installation.",
                    postal_address=self.postal_address,
                ),
            },
        )
        message_key = "ops-" + hashlib.sha256(ident.encode()).hexdigest()[:24]
        for addr in self.admin_emails:
            msg = build_message(
                rendered,
                from_addr=self.mail_from,
                to_addr=addr,
                to_name="",
                delivery_id=message_key,
                now=now,
                base_url=self.base_url,
                unsubscribe_token=None,
                list_id=None,
                mail_domain=self.mail_domain,
            )
            self.mailer.send(msg)
        return len(self.admin_emails)
