"""Building the MIME message: structure, deterministic ids, list headers, header injection."""

from __future__ import annotations

import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import pytest

from conftest import fixture_file
from mail_fixtures import HF_DAY_2024_03_12, NOW, sample_digest, sample_footer
from paperalerts.core.message import build_message, mail_domain_of, message_id
from paperalerts.core.render import Rendered, render_digest
from paperalerts.errors import ConfigError, PermanentDeliveryError

TOKEN = "WzEyLDNd.ZzZy5A.h2Xz-Jx0C1rF_v9d3JH3ZBv1w3k"
EXPECTED_HEADERS = [
    "Subject",
    "From",
    "To",
    "Date",
    "Message-ID",
    "Auto-Submitted",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "MIME-Version",
    "Content-Type",
]


def rendered() -> Rendered:
    return render_digest(sample_digest(fixture_file(HF_DAY_2024_03_12)), sample_footer())


def build(r: Rendered | None = None, **overrides: Any) -> EmailMessage:
    kwargs: dict[str, Any] = {
        "from_addr": "Paper Alerts <alerts@example.org>",
        "to_addr": "ada@example.org",
        "to_name": "Ada Lovelace",
        "delivery_id": 42,
        "now": NOW,
        "base_url": "https://alerts.example.org",
        "unsubscribe_token": TOKEN,
        "list_id": "digest.example.org",
        "mail_domain": "example.org",
        **overrides,
    }
    return build_message(r or rendered(), **kwargs)


def wire(msg: EmailMessage) -> bytes:
    return msg.as_bytes()


def parse(data: bytes) -> EmailMessage:
    parsed = BytesParser(policy=email.policy.default).parsebytes(data)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_structure_and_parts_round_trip() -> None:
    """multipart/alternative with text first, then HTML; both decode back to what was rendered."""
    r = rendered()
    msg = parse(wire(build(r)))
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert [p["Content-Transfer-Encoding"] for p in parts] == ["quoted-printable"] * 2
    # on the wire every line ends in CRLF; the content is otherwise exactly what was rendered
    assert parts[0].get_content().replace("\r\n", "\n") == r.text
    assert parts[1].get_content().replace("\r\n", "\n") == r.html


def test_headers() -> None:
    """Exactly the expected headers, with the RFC 8058 one-click unsubscribe pair."""
    msg = parse(wire(build()))
    assert list(msg.keys()) == EXPECTED_HEADERS
    assert msg["Subject"] == "Tue 12 Mar 2024: 7 new papers for Diffusion, Language models"
    assert msg["From"] == "Paper Alerts <alerts@example.org>"
    assert msg["To"] == "Ada Lovelace <ada@example.org>"
    assert msg["Date"] == "Tue, 12 Mar 2024 08:00:00 +0000"
    assert msg["List-Id"] == "<digest.example.org>"
    assert " ".join(msg["List-Unsubscribe"].split()) == (
        f"<https://alerts.example.org/u/{TOKEN}>, "
        f"<mailto:unsubscribe@example.org?subject=unsubscribe-{TOKEN}>"
    )
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["Auto-Submitted"] == "auto-generated"


def test_message_id_is_derived_from_the_delivery() -> None:
    """Same delivery -> same Message-ID and identical bytes (a resend is the same message);
    another delivery or domain -> another id."""
    a, b = build(), build(now=NOW)
    assert a["Message-ID"] == b["Message-ID"] == message_id(42, "example.org")
    assert a["Message-ID"].startswith("<delivery-42.") and a["Message-ID"].endswith("@example.org>")
    assert wire(a) == wire(b)
    assert message_id(43, "example.org") != a["Message-ID"]
    assert message_id(42, "example.net") != a["Message-ID"].replace("example.org", "example.net")


def test_lines_are_short_and_seven_bit() -> None:
    """Every line fits RFC 5322 (998) and the bodies RFC 2045 (76); all bytes are 7-bit."""
    data = wire(build())
    assert data.isascii()
    lines = data.split(b"\r\n")
    assert max(len(line) for line in lines) <= 998
    body = data.split(b"\r\n\r\n", 1)[1]
    assert max(len(line) for line in body.split(b"\r\n")) <= 76


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("to_name", "Ada\r\nBcc: evil@example.net"),
        ("to_name", "=?utf-8?q?Ada=0D=0ABcc:_evil@example.net?="),
        ("to_name", "Ada =?utf-8?b?DQpCY2M6IGV2aWxAZXhhbXBsZS5uZXQ=?= L"),
        ("subject", "Hi\r\nBcc: evil@example.net"),
        ("subject", "Hi =?utf-8?q?=0D=0ABcc:_evil@example.net?="),
        ("subject", "Hi\u2028Bcc: evil@example.net\x00"),
    ],
)
def test_header_injection_never_adds_a_header(field: str, value: str) -> None:
    """Line breaks, raw or hidden in RFC 2047 encoded words, in a name or title never add a
    header: the parsed message has exactly the expected headers and one-line values."""
    r = rendered()
    msg = build(Rendered(value, r.text, r.html)) if field == "subject" else build(r, to_name=value)
    parsed = parse(wire(msg))
    assert list(parsed.keys()) == EXPECTED_HEADERS
    assert "Bcc" not in parsed
    for name in ("Subject", "To"):
        assert "\n" not in str(parsed[name]) and "\r" not in str(parsed[name])
    assert parsed["To"].addresses[0].addr_spec == "ada@example.org"


@pytest.mark.parametrize("addr", ["ada@example.org\r\nBcc: e@x.org", "not an address", ""])
def test_bad_recipient_is_a_permanent_failure(addr: str) -> None:
    """An unusable recipient fails the delivery at once with 5.1.3 (bad address syntax)."""
    with pytest.raises(PermanentDeliveryError) as e:
        build(to_addr=addr)
    assert e.value.enhanced == "5.1.3"


@pytest.mark.parametrize(
    "overrides",
    [
        {"from_addr": "no address here"},
        {"mail_domain": "exa mple.org"},
        {"base_url": "javascript:alert(1)"},
        {"list_id": "a\r\nb"},
        {"unsubscribe_token": "a b"},
    ],
)
def test_bad_settings_are_config_errors(overrides: dict[str, str]) -> None:
    """Malformed settings-derived values are refused with ConfigError naming them."""
    with pytest.raises(ConfigError, match="invalid"):
        build(**overrides)


def test_confirmation_mail_has_no_list_headers() -> None:
    """Without an unsubscribe token and list id (sign-up confirmation) no List-* headers."""
    msg = parse(wire(build(unsubscribe_token=None, list_id=None)))
    assert not [k for k in msg if k.startswith("List-")]


def test_naive_now_is_refused_and_domain_helper() -> None:
    """The Date needs an aware datetime; the mail domain comes from the From setting."""
    with pytest.raises(ValueError, match="timezone-aware"):
        build(now=datetime(2024, 1, 1))
    assert mail_domain_of("Paper Alerts <alerts@example.org>") == "example.org"
    assert build(now=datetime(2024, 1, 1, tzinfo=UTC))["Date"] == "Mon, 01 Jan 2024 00:00:00 +0000"


def test_a_non_ascii_subject_reads_back_exactly() -> None:
    """A long subject with "≥" or accents is folded into encoded words that decode to the very
    same text: the default folding came back with a doubled space ("upvotes  ≥ 30")."""
    import email
    import email.policy
    from email.message import EmailMessage as Msg

    from paperalerts.core.message import POLICY

    for subject in (
        "Mon 27 Apr 2026: 6 new papers for anomaly + detection, upvotes ≥ 30 and 1 more",
        "Ünïcödé " + "wörd " * 30,
    ):
        msg = Msg(policy=POLICY)
        msg["Subject"] = subject
        raw = msg.as_bytes()
        assert all(len(line) <= 78 for line in raw.split(b"\r\n"))
        back = email.message_from_bytes(raw, policy=email.policy.default)["Subject"]
        assert str(back) == subject
