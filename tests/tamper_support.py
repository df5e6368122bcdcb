"""Tampering with signed tokens in tests, deterministically.

An itsdangerous token ends in ``.SIGNATURE``, unpadded URL-safe base64 of the HMAC. Its last
character also carries padding bits that the decoder drops (a 20-byte SHA-1 MAC is 27 characters:
162 bits for 160), so replacing that character by another may leave the decoded signature as it
was, and the "tampered" token is still valid: a test written that way passes or fails by chance
(about 1 run in 16 for "replace the last character by A"). `tamper` flips a bit of the decoded
signature instead, which always gives a different signature.
"""

from __future__ import annotations

import base64


def tamper(token: str) -> str:
    """`token` with the first bit of its decoded signature flipped (always an invalid token)."""
    head, dot, sig = token.rpartition(".")
    assert dot, f"not a signed token: {token!r}"
    raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
    flipped = bytes([raw[0] ^ 0x80]) + raw[1:]
    return f"{head}.{base64.urlsafe_b64encode(flipped).decode().rstrip('=')}"


def tamper_url(url: str) -> str:
    """A link ending in ``/TOKEN`` with its token's signature changed (see `tamper`)."""
    base, _, token = url.rpartition("/")
    return f"{base}/{tamper(token)}"
