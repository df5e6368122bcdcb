"""Render once, fill many: a digest message assembled as bytes (`prepare_message`) is the message
`build_message` gives, flattened as the mailer sends it: the same headers, parts and bytes."""

from __future__ import annotations

import email.policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import fixture_file
from mail_fixtures import HF_DAY_2024_03_12, HF_DAY_2026_05_08, NOW, sample_digest, sample_footer
from paperalerts.core.message import Prepared, build_message, prepare_message
from paperalerts.core.render import Rendered, render_digest
from paperalerts.edges.mailer import _envelope
from paperalerts.errors import ConfigError, PermanentDeliveryError

ARGS: dict[str, Any] = {
    "from_addr": "Paper Alerts <alerts@example.org>",
    "to_addr": "ada@example.org",
    "to_name": "Ada Lovelace",
    "delivery_id": 42,
    "now": NOW,
    "base_url": "https://alerts.example.org",
    "unsubscribe_token": "WzEyLDNd.ZzZy5A.h2Xz-Jx0C1rF_v9d3JH3ZBv1w3k",
    "list_id": "digest.example.org",
    "mail_domain": "example.org",
}


def parsed(data: bytes) -> EmailMessage:
    msg = BytesParser(policy=email.policy.default).parsebytes(data)
    assert isinstance(msg, EmailMessage)
    return msg


def shape(msg: EmailMessage) -> tuple[Any, ...]:
    """What a reader sees: every header (name, decoded value) and every part's type and text."""
    parts = [(p.get_content_type(), p.get_content()) for p in msg.walk() if not p.is_multipart()]
    return [(k, str(v)) for k, v in msg.items()], parts


def both(r: Rendered, **overrides: Any) -> tuple[tuple[str, list[str], bytes, list[str]], Any]:
    """(today's builder flattened by the mailer, the prepared message's envelope)."""
    kwargs = {**ARGS, **overrides}
    return _envelope(build_message(r, **kwargs)), _envelope(prepare_message(r, **kwargs))


@pytest.mark.parametrize("fixture", [HF_DAY_2024_03_12, HF_DAY_2026_05_08])
@pytest.mark.parametrize("frequency", ["daily", "instant"])
def test_prepared_digest_is_todays_message_byte_for_byte(fixture: str, frequency: str) -> None:
    """A real digest: same envelope, same bytes, so it parses to the same headers and parts."""
    r = render_digest(sample_digest(fixture_file(fixture), frequency=frequency), sample_footer())
    (sender, rcpts, data, opts), prepared = both(r)
    assert prepared == (sender, rcpts, data, opts)
    assert shape(parsed(prepared[2])) == shape(parsed(data))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    subject=st.text(max_size=200),
    name=st.text(max_size=80),
    text=st.text(max_size=300),
    html=st.text(max_size=300),
    delivery_id=st.integers(min_value=1, max_value=10**12),
    token=st.from_regex(r"[A-Za-z0-9_.-]{1,80}", fullmatch=True),
    list_id=st.sampled_from([None, "digest.example.org", "d." + "x" * 70 + ".example.org"]),
)
def test_any_content_gives_the_same_bytes_as_todays_builder(
    subject: str, name: str, text: str, html: str, delivery_id: int, token: str,
    list_id: str | None,
) -> None:
    """Whatever the subject, display name and bodies hold (non-ASCII, control characters,
    encoded-word lookalikes, long lines, bare CR/LF), the prepared bytes are exactly what the
    mailer sent for today's message, and the headers and parts read back the same."""
    r = Rendered(subject, text, html)
    old, new = both(r, to_name=name, delivery_id=delivery_id, unsubscribe_token=token,
                    list_id=list_id)
    assert new == old
    assert shape(parsed(new[2])) == shape(parsed(old[2]))


def test_prepared_message_answers_like_a_message() -> None:
    """The pipeline and the file outbox read Message-ID, Subject and To as on a message; the
    bytes parse back into one."""
    r = render_digest(sample_digest(fixture_file(HF_DAY_2024_03_12)), sample_footer())
    msg = build_message(r, **ARGS)
    prepared = prepare_message(r, **ARGS)
    assert isinstance(prepared, Prepared)
    for name in ("Message-ID", "Subject", "To", "From"):
        assert prepared[name] == str(msg[name]) == prepared.get(name)
    assert prepared.get("Bcc") is None and prepared["Bcc"] is None
    assert prepared.message()["Message-ID"] == msg["Message-ID"]


def test_non_ascii_address_is_built_the_general_way() -> None:
    """An internationalised address needs SMTPUTF8 headers: the general builder makes it, and
    the mailer sends it as before."""
    r = Rendered("Hi", "t", "<p>h</p>")
    out = prepare_message(r, **{**ARGS, "to_addr": "ada@exämple.org"})
    assert isinstance(out, EmailMessage)
    assert _envelope(out)[3] == ["SMTPUTF8"]


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"to_addr": "ada@example.org\r\nBcc: e@x.org"}, PermanentDeliveryError),
        ({"to_addr": "not an address"}, PermanentDeliveryError),
        ({"from_addr": "no address here"}, ConfigError),
        ({"mail_domain": "exa mple.org"}, ConfigError),
        ({"base_url": "javascript:alert(1)"}, ConfigError),
        ({"list_id": "a\r\nb"}, ConfigError),
        ({"unsubscribe_token": "a b"}, ConfigError),
    ],
)
def test_bad_input_fails_as_todays_builder_does(overrides: dict[str, str], error: type) -> None:
    """A bad recipient is a permanent delivery failure, bad settings a ConfigError, as before."""
    r = Rendered("Hi", "t", "<p>h</p>")
    with pytest.raises(error):
        build_message(r, **{**ARGS, **overrides})
    with pytest.raises(error):
        prepare_message(r, **{**ARGS, **overrides})
