"""subscribers add/list/remove/links and rules add/list/preview, as the real console script."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import fixture_file
from paperalerts.core.tokens import read_token


def run(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PAPERALERTS_DATABASE_URL": db_url,
        "PAPERALERTS_SECRET_KEY": "k" * 32,
        "PAPERALERTS_BASE_URL": "https://alerts.example.org",
    }
    return subprocess.run(
        [sys.executable, "-m", "paperalerts", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_subscriber_lifecycle_and_links(sqlite_url: str) -> None:
    """add normalises and validates the address; list shows email and status; links are signed
    for their purpose; remove deletes."""
    run(sqlite_url, "init", "--no-defaults")
    r = run(
        sqlite_url,
        "subscribers",
        "add",
        "Ann@Example.ORG",
        "--confirmed",
        "--frequency",
        "weekly",
        "--weekday",
        "fri",
        "--timezone",
        "Europe/Berlin",
    )
    assert r.returncode == 0, r.stderr
    assert run(sqlite_url, "subscribers", "add", "bob@").returncode == 1
    r = run(sqlite_url, "subscribers", "add", "bob@example.org", "--timezone", "Mars/Olympus")
    assert r.returncode == 1 and "Mars/Olympus" in r.stderr
    assert run(sqlite_url, "subscribers", "add", "ann@example.org").returncode == 1  # duplicate
    run(sqlite_url, "subscribers", "add", "bob@example.org")
    lines = run(sqlite_url, "subscribers", "list").stdout.splitlines()
    assert [ln.split("\t")[:3] for ln in lines] == [
        ["ann@example.org", "active", "weekly"],
        ["bob@example.org", "pending", "daily"],
    ]
    links = dict(
        ln.split("\t")
        for ln in run(sqlite_url, "subscribers", "links", "ann@example.org").stdout.splitlines()
    )
    assert links["unsubscribe"].startswith("https://alerts.example.org/u/")
    token = links["unsubscribe"].rsplit("/", 1)[1]
    assert read_token("k" * 32, "unsubscribe", token) == (1, 1)
    assert run(sqlite_url, "subscribers", "remove", "bob@example.org", "--yes").returncode == 0
    assert len(run(sqlite_url, "subscribers", "list").stdout.splitlines()) == 1


def test_rules_add_list_and_preview(sqlite_url: str) -> None:
    """rules add refuses a malformed query with its position (exit 2); preview lists the stored
    papers a query would match with the hit terms bracketed."""
    run(sqlite_url, "init", "--no-defaults")
    run(sqlite_url, "sources", "add", "hf", "hf-api", "https://e.org/api", "--no-check")
    run(sqlite_url, "subscribers", "add", "ann@example.org", "--confirmed")
    r = run(sqlite_url, "rules", "add", "ann@example.org", "title:(diffusion")
    assert r.returncode == 2 and "unbalanced parenthesis at 6" in r.stderr
    r = run(sqlite_url, "rules", "add", "ann@example.org", "video diffusion", "--name", "Video")
    assert r.returncode == 0, r.stderr
    assert run(sqlite_url, "rules", "list").stdout.split("\t")[1:5] == [
        "ann@example.org",
        "enabled",
        "Video",
        "video diffusion\n",
    ]
    day = fixture_file("hf_api_daily_papers/hf_api_daily_papers_2024-03-12.json")
    run(sqlite_url, "scrape", "hf", "--file", str(day))
    out = run(sqlite_url, "rules", "preview", "title:diffusion").stdout.splitlines()
    assert (
        out[0] == "2403.06098\tVidProM: A Million-scale Real Prompt-Gallery Dataset for "
        "Text-to-Video [Diffusion] Models"
    )
    assert out[2] == "2403.06738\tV3D: Video [Diffusion] Models are Effective 3D Generators"
    assert out[-1] == "2 of 9 papers from the last 7 days match"


def test_addresses_are_stored_in_an_ascii_form_we_can_send_to(sqlite_url: str) -> None:
    """The CLI refuses a non-ASCII mailbox name with the reason, and stores an internationalised
    domain in its IDNA form (the same rule as the web forms)."""
    from paperalerts.core.subscribers import InvalidAddress, normalize_email

    assert normalize_email(" Jörg@Exämple.org ".replace("Jörg", "Joerg")) == (
        "joerg@xn--exmple-cua.org"
    )
    try:
        normalize_email("üser@example.org")
    except InvalidAddress as e:
        assert "non-ASCII characters before the @" in str(e)
    else:
        raise AssertionError("a non-ASCII mailbox name was accepted")
    run(sqlite_url, "init", "--no-defaults")
    r = run(sqlite_url, "subscribers", "add", "üser@example.org")
    assert r.returncode == 1 and "non-ASCII characters before the @" in r.stderr
