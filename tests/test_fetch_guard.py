"""fetch.py's refusals: schemes, the SSRF guard on every hop, IP pinning (also over real TLS),
and the public-address classifier. No packet leaves loopback (see fetch_support)."""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Iterator

import pytest
import trustme

from fetch_support import (
    PUBLIC_IP,
    LocalServer,
    LoopbackOnly,
    NoNetwork,
    Reply,
    make_fetcher,
    running,
)
from paperalerts.edges.fetch import is_public_address
from paperalerts.errors import PermanentFetchError, TransientFetchError


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with running() as local:
        yield local


@pytest.mark.parametrize("url", ["ftp://example.org/feed.xml", "file:///etc/passwd", "not a url"])
def test_non_http_urls_are_refused(url: str) -> None:
    """Only http and https are fetched; anything else is refused before any connection."""
    with make_fetcher(transport=NoNetwork()) as fetcher, pytest.raises(PermanentFetchError):
        fetcher.fetch(url)


def test_loopback_is_refused_without_allow_private(server: LocalServer) -> None:
    """http://127.0.0.1 is refused when private URLs are not allowed; the server sees nothing."""
    server.route("/feed", Reply(200, body=b"secret"))
    with (
        make_fetcher(allow_private=False) as fetcher,
        pytest.raises(PermanentFetchError, match=r"non-public address 127\.0\.0\.1"),
    ):
        fetcher.fetch(f"{server.base}/feed")
    assert server.requests == []


@pytest.mark.parametrize("answers", [["127.0.0.1"], [PUBLIC_IP, "10.0.0.7"], ["::1"]])
def test_hostname_resolving_to_any_private_address_is_refused(answers: list[str]) -> None:
    """A name is refused if any of its addresses is non-public (no connection is attempted)."""
    fetcher = make_fetcher(allow_private=False, transport=NoNetwork(), resolver=lambda h: answers)
    with fetcher, pytest.raises(PermanentFetchError, match="non-public"):
        fetcher.fetch("https://public.example/feed")


def test_redirect_to_loopback_is_refused_and_requests_are_pinned(server: LocalServer) -> None:
    """public.example (resolving to a public IP) redirecting to 127.0.0.1 is refused before the
    second hop; the first hop connected to the checked IP with Host: public.example."""
    server.route("/start", Reply(302, {"Location": f"{server.base}/secret"}))
    server.route("/secret", Reply(200, body=b"secret"))
    transport = LoopbackOnly()
    fetcher = make_fetcher(allow_private=False, transport=transport, resolver=lambda h: [PUBLIC_IP])
    with fetcher, pytest.raises(PermanentFetchError, match=r"non-public address 127\.0\.0\.1"):
        fetcher.fetch(f"http://public.example:{server.port}/start")
    assert server.paths == ["/start"]
    assert server.requests[0][1]["Host"] == f"public.example:{server.port}"
    assert [str(r.url) for r in transport.seen] == [f"http://{PUBLIC_IP}:{server.port}/start"]
    assert transport.seen[0].extensions["sni_hostname"] == "public.example"


@pytest.mark.parametrize(("cert_name", "ok"), [("public.example", True), ("other.example", False)])
def test_pinned_https_verifies_the_certificate_for_the_hostname(cert_name: str, ok: bool) -> None:
    """Pinned to the checked IP, HTTPS still sends SNI and verifies the certificate for the real
    hostname: a certificate for public.example is accepted, one for another name refused."""
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(cert_name).configure_cert(server_tls)
    client_tls = ssl.create_default_context()
    ca.configure_trust(client_tls)
    with running(server_tls) as local:
        local.route("/feed", Reply(200, body=b"over tls"))
        fetcher = make_fetcher(
            allow_private=False,
            retries=0,
            transport=LoopbackOnly(verify=client_tls),
            resolver=lambda h: [PUBLIC_IP],
        )
        with fetcher:
            url = f"https://public.example:{local.port}/feed"
            if ok:
                assert fetcher.fetch(url).body == b"over tls"
            else:
                with pytest.raises(TransientFetchError, match="CERTIFICATE_VERIFY_FAILED"):
                    fetcher.fetch(url)
                assert local.requests == []


def test_unresolvable_host_is_transient() -> None:
    """A DNS failure is retried, then TransientFetchError."""

    def fail(host: str) -> list[str]:
        raise OSError(f"no such host {host}")

    fetcher = make_fetcher(allow_private=False, transport=NoNetwork(), resolver=fail, retries=1)
    with fetcher, pytest.raises(TransientFetchError, match=r"cannot resolve nowhere\.example"):
        fetcher.fetch("https://nowhere.example/")


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("172.31.255.255", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata endpoint
        ("127.0.0.1", False),
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("224.0.0.251", False),  # multicast (is_global alone says True)
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("::", False),
        ("fc00::1", False),
        ("fe80::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("2002:7f00:1::", False),  # 6to4 carrying 127.0.0.1
        ("93.184.216.34", True),
        ("172.32.0.1", True),
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("::ffff:8.8.8.8", True),
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    """The SSRF classifier over private, special and public IPv4/IPv6 addresses."""
    assert is_public_address(ipaddress.ip_address(address)) is public
