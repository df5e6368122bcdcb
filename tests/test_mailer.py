"""The SMTP edge against a real aiosmtpd server: delivery, reuse, reconnects, classification,
TLS and AUTH, pacing through a rate limiter, and the file backend."""

from __future__ import annotations

import shutil
import smtplib
import ssl
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from clock_support import FakeClock
from conftest import fixture_file
from mail_fixtures import HF_DAY_2024_03_12, NOW, hf_papers, match, sample_digest, sample_footer
from paperalerts.core.digest import SubscriberInfo, build_digest
from paperalerts.core.message import build_message
from paperalerts.core.render import render_digest
from paperalerts.edges.config import Settings
from paperalerts.edges.mailer import (
    FileMailer,
    SMTPConfig,
    SMTPMailer,
    classify,
    mailer_from_settings,
)
from paperalerts.edges.ratelimit import TokenBucket
from paperalerts.errors import ConfigError, PermanentDeliveryError, TransientDeliveryError
from smtp_sink import SMTPSink


def digest_message(to: str = "ada@example.org", delivery_id: int = 1, **kw: object):  # type: ignore[no-untyped-def]
    r = render_digest(sample_digest(fixture_file(HF_DAY_2024_03_12)), sample_footer())
    args: dict[str, object] = {
        "from_addr": "Paper Alerts <alerts@example.org>",
        "to_addr": to,
        "to_name": "Ada Lovelace",
        "delivery_id": delivery_id,
        "now": NOW,
        "base_url": "https://alerts.example.org",
        "unsubscribe_token": "TOKEN.abc",
        "list_id": "digest.example.org",
        "mail_domain": "example.org",
        **kw,
    }
    return build_message(r, **args)  # type: ignore[arg-type]




def test_send_delivers_the_exact_message(sink: SMTPSink, mailer: SMTPMailer) -> None:
    """The server receives the envelope and bytes of the message and its reply is returned."""
    msg = digest_message()
    reply = mailer.send(msg)
    assert reply == "250 2.0.0 OK queued as Q1"
    got = sink.messages[0]
    assert (got.mail_from, got.rcpt_tos) == ("alerts@example.org", ("ada@example.org",))
    parsed = got.message
    assert parsed["Message-ID"] == msg["Message-ID"]
    assert parsed["Subject"] == "Tue 12 Mar 2024: 7 new papers for Diffusion, Language models"
    assert "Stealing Part of a Production" in parsed.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def test_one_connection_for_many_messages(sink: SMTPSink, mailer: SMTPMailer) -> None:
    """Five sends share one connection."""
    for n in range(5):
        mailer.send(digest_message(delivery_id=n))
    assert len(sink.messages) == 5
    assert sink.connections == 1 and mailer.connections_opened == 1


def test_4xx_is_transient_and_the_connection_stays_usable(
    sink: SMTPSink, mailer: SMTPMailer
) -> None:
    """451 at RCPT -> TransientDeliveryError with its codes; the session is reset and the next
    message goes through on the same connection."""
    mailer.send(digest_message(delivery_id=1))
    sink.fail_next("RCPT", 1, "451 4.3.0 try later")
    with pytest.raises(TransientDeliveryError) as e:
        mailer.send(digest_message(delivery_id=2))
    assert (e.value.code, e.value.enhanced) == (451, "4.3.0")
    mailer.send(digest_message(delivery_id=3))
    assert [m.message["Message-ID"] for m in sink.messages] == [
        digest_message(delivery_id=1)["Message-ID"],
        digest_message(delivery_id=3)["Message-ID"],
    ]
    assert sink.connections == 1


def test_550_for_one_address_is_permanent_with_enhanced_code(
    sink: SMTPSink, mailer: SMTPMailer
) -> None:
    """A refused address -> PermanentDeliveryError 550 / 5.1.1 (a bounce); others still work."""
    sink.reject("gone@example.org", "550 5.1.1 no such user")
    with pytest.raises(PermanentDeliveryError) as e:
        mailer.send(digest_message(to="gone@example.org"))
    assert (e.value.code, e.value.enhanced, e.value.is_address_rejection) == (550, "5.1.1", True)
    assert "gone@example.org" in str(e.value)
    mailer.send(digest_message(to="ada@example.org"))
    assert [m.rcpt_tos for m in sink.messages] == [("ada@example.org",)]


def test_5xx_at_data_is_permanent_not_a_bounce(sink: SMTPSink, mailer: SMTPMailer) -> None:
    """554 5.7.1 on the data (content refused) is permanent but not an address rejection."""
    sink.fail_next("DATA", 1, "554 5.7.1 message refused")
    with pytest.raises(PermanentDeliveryError) as e:
        mailer.send(digest_message())
    assert (e.value.code, e.value.enhanced, e.value.is_address_rejection) == (554, "5.7.1", False)


def test_server_down_is_transient(sink: SMTPSink) -> None:
    """Nothing listening -> TransientDeliveryError (retry later)."""
    sink.stop()
    m = SMTPMailer(sink.url, timeout=2)
    with pytest.raises(TransientDeliveryError, match="ConnectionRefusedError"):
        m.send(digest_message())


def test_reconnects_after_a_server_restart(sink: SMTPSink, mailer: SMTPMailer) -> None:
    """The server restarts between two sends: the dead connection is replaced transparently."""
    mailer.send(digest_message(delivery_id=1))
    sink.restart()
    mailer.send(digest_message(delivery_id=2))
    assert len(sink.messages) == 2 and mailer.connections_opened == 2


def test_421_on_a_reused_connection_reconnects(sink: SMTPSink, mailer: SMTPMailer) -> None:
    """A server closing an idle session answers 421: the mailer reconnects and sends."""
    mailer.send(digest_message(delivery_id=1))
    sink.fail_next("MAIL", 1, "421 4.4.2 idle timeout")
    mailer.send(digest_message(delivery_id=2))
    assert len(sink.messages) == 2 and sink.connections == 2


def test_421_on_a_fresh_connection_is_transient(sink: SMTPSink, mailer: SMTPMailer) -> None:
    """421 from a server that was just connected to is not retried here: transient."""
    sink.fail_next("MAIL", 1, "421 4.3.2 too busy")
    with pytest.raises(TransientDeliveryError) as e:
        mailer.send(digest_message())
    assert e.value.code == 421


def test_timeout_is_transient_and_the_next_send_reconnects(sink: SMTPSink) -> None:
    """A server slower than the timeout -> TransientDeliveryError; the next send reconnects."""
    m = SMTPMailer(sink.url, timeout=0.3)
    sink.slow_data(1.0)
    with pytest.raises(TransientDeliveryError, match=r"timeout|timed out"):
        m.send(digest_message(delivery_id=1))
    sink.slow_data(0)
    m.send(digest_message(delivery_id=2))
    assert m.connections_opened == 2
    m.close()


def test_escaped_title_and_injected_name_arrive_safely(sink: SMTPSink, mailer: SMTPMailer) -> None:
    """Through a real server: a <script> title is escaped in the HTML part and a display name
    with CR/LF or an encoded newline adds no header."""
    p = replace(
        hf_papers(fixture_file(HF_DAY_2024_03_12))[0], title="<script>alert(1)</script> Model"
    )
    d = build_digest(
        SubscriberInfo("ada@example.org"),
        [match(p, 1, "r", ["model"], NOW)],
        [],
        now=NOW,
        online_url="https://alerts.example.org/v/T",
    )
    r = render_digest(d, sample_footer())
    msg = build_message(
        r,
        from_addr="alerts@example.org",
        to_addr="ada@example.org",
        to_name="=?utf-8?q?Ada=0D=0ABcc:_evil@example.net?=\r\nBcc: evil@example.net",
        delivery_id=9,
        now=NOW,
        base_url="https://alerts.example.org",
        unsubscribe_token="T",
        list_id="digest.example.org",
        mail_domain="example.org",
    )
    mailer.send(msg)
    got = sink.messages[0]
    assert got.rcpt_tos == ("ada@example.org",)
    parsed = got.message
    assert "Bcc" not in parsed and len(parsed.get_all("To") or []) == 1
    html = parsed.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


# --- TLS and AUTH ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def contexts(tls_files: tuple[Path, Path]) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(*map(str, tls_files))
    client = ssl.create_default_context(cafile=str(tls_files[0]))
    return server, client


def test_starttls_with_auth(tls_files: tuple[Path, Path]) -> None:
    """smtp://user:pass@host?starttls=true upgrades to TLS, then authenticates, then sends."""
    server, client = contexts(tls_files)
    with SMTPSink(auth=("mailer", "s3cret/+"), tls_context=server, require_starttls=True) as s:
        url = f"smtp://mailer:s3cret%2F%2B@127.0.0.1:{s.port}?starttls=true"
        m = SMTPMailer(url, ssl_context=client, timeout=5)
        m.send(digest_message())
        m.close()
        assert len(s.messages) == 1


def test_implicit_tls(tls_files: tuple[Path, Path]) -> None:
    """smtps:// speaks TLS from the first byte."""
    server, client = contexts(tls_files)
    with SMTPSink(tls_context=server, implicit_tls=True) as s:
        m = SMTPMailer(s.url, ssl_context=client, timeout=5)
        m.send(digest_message())
        m.close()
        assert s.url.startswith("smtps://") and len(s.messages) == 1


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_wrong_password_is_permanent() -> None:
    """AUTH refused (535 5.7.8) fails permanently, and is not a recipient bounce."""
    with SMTPSink(auth=("mailer", "right")) as s:
        m = SMTPMailer(f"smtp://mailer:wrong@127.0.0.1:{s.port}", timeout=5)
        with pytest.raises(PermanentDeliveryError) as e:
            m.send(digest_message())
        assert e.value.code == 535 and not e.value.is_address_rejection
        assert s.messages == []


# --- configuration and classification -------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://relay.example.org", SMTPConfig("relay.example.org", 25)),
        (
            "smtp://u:p%40ss@relay:2525?starttls=true",
            SMTPConfig("relay", 2525, False, True, "u", "p@ss"),
        ),
        ("smtp://relay?starttls=true", SMTPConfig("relay", 587, False, True)),
        ("smtps://u:p@relay", SMTPConfig("relay", 465, True, False, "u", "p")),
    ],
)
def test_smtp_url_parsing(url: str, expected: SMTPConfig) -> None:
    """SMTP_URL gives host, port (default by scheme), TLS mode and unquoted credentials."""
    assert SMTPConfig.from_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://relay", "smtp://host"),
        ("smtp://relay?starttls=maybe", "starttls must be true or false"),
        ("smtp://relay?tls=1", "unknown options"),
        ("smtps://relay?starttls=true", "already TLS"),
        ("smtp://relay:99999", "bad port"),
    ],
)
def test_bad_smtp_urls(url: str, message: str) -> None:
    """A malformed SMTP_URL is a ConfigError saying what is wrong."""
    with pytest.raises(ConfigError, match=message):
        SMTPConfig.from_url(url)


@pytest.mark.parametrize(
    ("exc", "kind", "code", "enhanced"),
    [
        (
            smtplib.SMTPRecipientsRefused({"a@x": (450, b"4.2.1 mailbox busy")}),
            TransientDeliveryError,
            450,
            "4.2.1",
        ),
        (
            smtplib.SMTPRecipientsRefused({"a@x": (451, b"x"), "b@x": (550, b"5.1.1 unknown")}),
            PermanentDeliveryError,
            550,
            "5.1.1",
        ),
        (
            smtplib.SMTPSenderRefused(553, b"5.1.8 bad sender", "s@x"),
            PermanentDeliveryError,
            553,
            "5.1.8",
        ),
        (
            smtplib.SMTPDataError(452, b"4.3.1 insufficient storage"),
            TransientDeliveryError,
            452,
            "4.3.1",
        ),
        (smtplib.SMTPDataError(554, b"rejected"), PermanentDeliveryError, 554, None),
        (smtplib.SMTPServerDisconnected("gone"), TransientDeliveryError, None, None),
        (ConnectionResetError(), TransientDeliveryError, None, None),
        (TimeoutError("timed out"), TransientDeliveryError, None, None),
    ],
)
def test_classification(exc: Exception, kind: type, code: int | None, enhanced: str | None) -> None:
    """4xx and connection trouble are transient, 5xx permanent; enhanced codes are parsed."""
    err = classify(exc)
    assert type(err) is kind and (err.code, err.enhanced) == (code, enhanced)


def test_mailer_from_settings(tmp_path: Path) -> None:
    """SMTP_URL set -> SMTPMailer paced at SMTP_RATE; unset -> FileMailer in OUTBOX_DIR."""
    smtp = mailer_from_settings(Settings(smtp_url="smtp://relay:2525", smtp_rate=5))
    assert isinstance(smtp, SMTPMailer) and smtp.config.port == 2525
    assert isinstance(smtp._limiter, TokenBucket) and smtp._limiter.rate == 5
    files = mailer_from_settings(Settings(smtp_url="", outbox_dir=tmp_path))
    assert isinstance(files, FileMailer) and files.outbox_dir == tmp_path


# --- pacing ---------------------------------------------------------------------------------


def test_mailer_paces_sends(sink: SMTPSink) -> None:
    """Through a real server, an SMTPMailer with a 4 msg/s bucket waits 0.25 s between sends."""
    clock = FakeClock()
    m = SMTPMailer(sink.url, limiter=TokenBucket(4.0, clock=clock, sleep=clock.sleep))
    for n in range(4):
        m.send(digest_message(delivery_id=n))
    m.close()
    assert clock.slept == [0.25, 0.25, 0.25] and len(sink.messages) == 4


# --- files ----------------------------------------------------------------------------------


def test_file_mailer_writes_parseable_eml_once_per_message_id(tmp_path: Path) -> None:
    """The outbox gets <message-id>.eml, parseable back to the same message; sending the same
    delivery again rewrites the same file; no temporary files are left."""
    m = FileMailer(tmp_path / "outbox")
    msg = digest_message(delivery_id=7)
    path = Path(m.send(msg))
    assert path.parent == tmp_path / "outbox" and path.suffix == ".eml"
    assert path.name.startswith("delivery-7.") and "@example.org" in path.name
    assert Path(m.send(digest_message(delivery_id=7))) == path
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    from email import message_from_bytes, policy

    parsed = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert parsed["Message-ID"] == msg["Message-ID"]
    assert parsed.get_content_type() == "multipart/alternative"


def test_bcc_is_a_recipient_but_never_transmitted(sink: SMTPSink, mailer: SMTPMailer) -> None:
    """A Bcc address gets the message; the Bcc header itself is not sent; the caller's message
    is left unchanged."""
    msg = digest_message()
    msg["Bcc"] = "audit@example.org"
    mailer.send(msg)
    got = sink.messages[0]
    assert got.rcpt_tos == ("ada@example.org", "audit@example.org")
    assert "Bcc" not in got.message and b"audit@example.org" not in got.data
    assert msg["Bcc"] == "audit@example.org"


def test_rate_bucket_is_shared_through_a_redis_broker_unless_configured() -> None:
    """The send-rate bucket lives in SMTP_RATE_REDIS_URL, else in a Redis broker, else nowhere
    shared (per process)."""
    from paperalerts.edges.mailer import rate_redis_url

    assert rate_redis_url(Settings(broker_url="redis://r:6379/0")) == "redis://r:6379/0"
    assert (
        rate_redis_url(Settings(broker_url="redis://r:6379/0", smtp_rate_redis_url="redis://x/1"))
        == "redis://x/1"
    )
    assert rate_redis_url(Settings(broker_url="")) is None
    assert rate_redis_url(Settings(broker_url="amqp://guest@localhost//")) is None
