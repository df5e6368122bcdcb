"""Signed envelope senders (VERP): which delivery a bounce is about, proven. Pure.

Every digest and alert is sent with its own envelope sender (SMTP ``MAIL FROM``, which the
receiving side keeps as ``Return-Path`` and sends bounces to)::

    bounces+<delivery id>-<tag>@<bounce domain>

`tag` is 16 base32 characters (80 bits) of an HMAC-SHA256, keyed with the installation's secret,
over the delivery id and the recipient's address. A report that reaches us at such an address, or
returns our message with such a Return-Path, therefore proves that we sent that delivery to that
address: nobody without the secret can make one for another delivery or another address. Lower
case only, because some mail systems fold the case of local parts; the local part stays far
below the 64 characters RFC 5321 allows.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Final

from paperalerts.errors import ConfigError

_TAG_LEN: Final = 16
_TAG_RE: Final = re.compile(r"^(\d{1,18})-([a-z2-7]{16})$")
_BASE_RE: Final = re.compile(r"^[a-z0-9._-]{1,30}@[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?$")


@dataclass(frozen=True)
class VerpTag:
    """What a VERP address carries: the delivery id and its tag (not yet checked)."""

    delivery_id: int
    tag: str


def bounce_address(setting: str, mail_domain: str) -> str:
    """The base bounce address: the BOUNCE_ADDRESS setting, else ``bounces@MAIL_DOMAIN``.
    ConfigError for one that is not a plain ``local@domain`` without ``+``."""
    base = (setting.strip() or f"bounces@{mail_domain}").lower()
    if not _BASE_RE.match(base):
        raise ConfigError(f"BOUNCE_ADDRESS must be local@domain (letters, digits, '.', '_', '-'; "
                          f"no '+', which starts the signed tag): {base!r}")
    return base


def _tag(secret: str, delivery_id: int, recipient: str) -> str:
    mac = hmac.new(secret.encode(), f"paperalerts.verp\0{delivery_id}\0{recipient.lower()}"
                   .encode(), hashlib.sha256).digest()
    return base64.b32encode(mac).decode("ascii").lower()[:_TAG_LEN]


def verp_address(base: str, secret: str, delivery_id: int, recipient: str) -> str:
    """The envelope sender of `delivery_id` to `recipient` (``local+ID-TAG@domain`` of `base`)."""
    local, _, domain = bounce_address(base, "").rpartition("@")
    return f"{local}+{delivery_id}-{_tag(secret, delivery_id, recipient)}@{domain}"


def read_verp(address: str, base: str) -> VerpTag | None:
    """The tag of `address` when it is a VERP address of `base` (any case), else None."""
    addr = parseaddr(address)[1].lower()
    local, _, domain = addr.rpartition("@")
    base_local, _, base_domain = base.lower().rpartition("@")
    if domain != base_domain or not local.startswith(base_local + "+"):
        return None
    found = _TAG_RE.match(local[len(base_local) + 1:])
    if found is None:
        return None
    return VerpTag(int(found.group(1)), found.group(2))


def verp_proves(secret: str, tag: VerpTag, recipient: str) -> bool:
    """Whether `tag` was made by us for its delivery id and `recipient`."""
    return hmac.compare_digest(tag.tag, _tag(secret, tag.delivery_id, recipient))
