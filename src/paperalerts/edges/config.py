"""Settings: the only module that reads the environment (prefix ``PAPERALERTS_``;
the README's settings table is generated from this class) and the installation's config file.

**Finding the installation.** One rule for every command and process: the environment wins;
then ``paperalerts.toml``, the file named by ``PAPERALERTS_CONFIG``, else the first one found in
the working directory or above it; then the defaults (a SQLite file in the working directory).
The file holds settings by their lower-case names (``database_url = "sqlite:///paperalerts.db"``);
a relative SQLite path or outbox in it is relative to the file, so a command run anywhere below
the installation opens the same database. `paperalerts init` writes one beside a new default
SQLite database. (TOML: read by the standard library, typed, commented; not ``.env``, which in
the repository is compose's.)"""

from __future__ import annotations

import os
import secrets
import tempfile
import tomllib
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from paperalerts.errors import ConfigError


class Settings(BaseSettings):
    """Every setting with its default. README lists them all; keep the two in step."""

    model_config = SettingsConfigDict(env_prefix="PAPERALERTS_", extra="ignore")

    config: str = Field(
        default="",
        description="A paperalerts.toml to read settings from; empty = the first paperalerts.toml "
        "in the working directory or above.",
    )
    database_url: str = Field(
        default="sqlite:///paperalerts.db",
        description="SQLAlchemy URL; default a SQLite file in the working directory.",
    )
    broker_url: str = Field(
        default="",
        description="Celery broker URL; empty = an embedded broker that needs no server.",
    )
    smtp_url: str = Field(
        default="",
        description="smtp://user:pass@host:port?starttls=true or smtps://...; empty = .eml files.",
    )
    outbox_dir: Path = Field(default=Path("outbox"), description="Where the file mailer writes.")
    mail_from: str = Field(default="paperalerts <alerts@localhost>", description="From address.")
    base_url: str = Field(
        default="http://127.0.0.1:8000",
        description="For links in emails (the address `paperalerts web` listens on by default).",
    )
    secret_key: str = Field(default="", description="Signs tokens; required outside embedded mode.")
    postal_address: str = Field(default="", description="Sender's postal address, in every footer.")
    allow_private_urls: bool = Field(
        default=False, description="Allow loopback/private hosts (tests and the demo only)."
    )

    # Fetching
    fetch_timeout: float = Field(default=20.0, description="Connect/read timeout, seconds.")
    fetch_retries: int = Field(default=3, description="Retries on transient fetch failures.")
    fetch_max_bytes: int = Field(default=10 * 1024 * 1024, description="Response size cap, bytes.")
    fetch_backoff: float = Field(default=1.0, description="Base of the exponential backoff, s.")
    fetch_max_retry_after: float = Field(
        default=60.0, description="Longest Retry-After honoured, seconds."
    )
    fetch_deadline: float = Field(
        default=90.0,
        description="Longest a whole fetch may take (attempts, waits, slow bodies), seconds.",
    )

    # Source health
    failing_after: int = Field(
        default=3, description="Consecutive rejected scrapes before a source is 'failing'."
    )

    # Digests and delivery
    digest_max_items: int = Field(default=50, description="Papers per digest before 'and N more'.")
    send_empty_digests: bool = Field(default=False, description="Send a digest with no papers.")
    smtp_rate: float = Field(default=10.0, description="Messages per second per relay.")
    bounce_threshold: int = Field(default=3, description="Bounce score that suspends a subscriber.")
    confirm_max_age_hours: int = Field(default=72, description="Double opt-in link lifetime.")
    smtp_timeout: float = Field(
        default=10.0,
        description="SMTP connect/command timeout, seconds (x the steps of one send must fit in "
        "the delivery lease).",
    )
    smtp_rate_redis_url: str = Field(
        default="",
        description="Redis URL sharing the send rate; empty = a Redis broker, else per process.",
    )
    mail_domain: str = Field(
        default="",
        description="Domain of Message-IDs and the mailto unsubscribe; empty = MAIL_FROM's.",
    )
    bounce_address: str = Field(
        default="",
        description="Where bounces go: each email's envelope sender is a signed "
        "local+ID-TAG@domain of it (route it to MAILBOX_URL); empty = bounces@MAIL_DOMAIN.",
    )
    mailbox_url: str = Field(
        default="",
        description="Mailbox read for mailto unsubscribes, bounces and complaints: "
        "maildir:///path or imap(s)://user:pass@host:port/INBOX; empty = none.",
    )

    # Workers
    worker_name: str = Field(
        default="",
        description="Celery node name of `paperalerts worker` (%h = this host's name); "
        "empty = paperalerts-<pid>@<host>, distinct for every worker process.",
    )

    # Web
    signup_limit_per_ip: int = Field(
        default=20, description="Sign-ups one IP address may make per hour (then 429)."
    )
    signup_limit_per_address: int = Field(
        default=3, description="Confirmation emails one address may be sent per hour."
    )
    preview_limit_per_subscriber: int = Field(
        default=3, description="'Send me a preview now' emails per subscriber per hour."
    )
    admin_session_hours: int = Field(default=12, description="Admin login session lifetime.")
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated addresses or networks (CIDR) of reverse proxies whose "
        "X-Forwarded-For/-Proto are believed; empty = none (the peer is the client).",
    )
    admin_password: str = Field(
        default="", description="Password for `paperalerts admin create` in scripts (else asked)."
    )

    # Delivery pipeline timing (tests shorten these; the defaults suit a real relay)
    delivery_lease_seconds: int = Field(
        default=120,
        description="How long a send holds its delivery before the sweep retakes it (extended "
        "while it sends; at least SMTP_TIMEOUT x the steps of one send).",
    )
    delivery_backoff_seconds: int = Field(
        default=60, description="First retry delay after a transient SMTP failure (then doubling)."
    )
    delivery_max_attempts: int = Field(
        default=100,
        description="A cap on send attempts (a backstop: transient failures are retried for "
        "DELIVERY_RETRY_HOURS, with backoff up to DELIVERY_BACKOFF_MAX_SECONDS).",
    )
    delivery_backoff_max_seconds: int = Field(
        default=1800, description="Longest wait between two tries of one delivery."
    )
    delivery_retry_hours: float = Field(
        default=36.0,
        description="How long a delivery is retried after transient failures before it fails "
        "and its papers go back to the reader's next digest.",
    )
    smtp_breaker_failures: int = Field(
        default=10,
        description="Transient SMTP failures in a row that pause all sending (the relay is "
        "down); one probe send a pause later resumes it. 0 = never pause.",
    )
    smtp_breaker_max_pause_seconds: int = Field(
        default=300, description="Longest pause between two probes of a relay that is down."
    )
    digest_match_wait_minutes: int = Field(
        default=60,
        description="How long past its send time a digest waits for matching of what was "
        "scraped before it (then it goes out, the rest joins the next digest).",
    )
    delivery_stale_seconds: int = Field(
        default=60, description="A queued delivery this old is handed out again by the sweep."
    )

    # Operations: the beat tick and operator health alerts
    admin_emails: str = Field(
        default="",
        description="Comma-separated addresses that get operator health alerts; empty = none.",
    )
    admin_timezone: str = Field(
        default="UTC",
        description="IANA timezone the admins' health emails show times in (e.g. Europe/Berlin).",
    )
    tick_seconds: float = Field(
        default=60.0,
        description="Seconds between the scheduler's runs (beat; tests and demos shorten it).",
    )
    tick_stale_seconds: int = Field(
        default=180,
        description="A scheduler that has not run for this long is an incident (beat or workers "
        "down).",
    )

    # In-email feedback and recommendations (issue 13)
    recommend_min_positives: int = Field(
        default=3,
        description="'More like this' clicks a subscriber gives before digests recommend papers.",
    )
    recommend_max_items: int = Field(
        default=5, description="Papers in a digest's 'You might also like' section (0 = off)."
    )
    feedback_link_days: int = Field(
        default=180, description="How long the feedback links in an email stay valid, days."
    )

    @property
    def embedded(self) -> bool:
        """One machine, no servers: a SQLite file and the embedded broker."""
        return not self.broker_url and self.database_url.startswith("sqlite:")

    def effective_secret_key(self) -> str:
        """The key that signs links. SECRET_KEY when set. Without it, in embedded mode, a random key
        kept in a file beside the SQLite database (created on first use, readable by its owner
        only), so links survive restarts and no two installs share a key; outside embedded mode
        a missing SECRET_KEY is a ConfigError (every web and worker process must share one)."""
        if self.secret_key:
            return self.secret_key
        if not self.embedded:
            raise ConfigError(
                "PAPERALERTS_SECRET_KEY is required with a broker or a server database "
                "(every process must sign links with the same key): set it to 32+ random bytes"
            )
        return _embedded_secret(self.database_url)


@lru_cache(maxsize=8)  # read once per process: the web app asks on every request
def _embedded_secret(database_url: str) -> str:
    db = database_url.removeprefix("sqlite:///")
    if database_url in ("sqlite://", "sqlite:///:memory:") or db == database_url:
        return secrets.token_hex(32)  # an in-memory database lives one process: so may its key
    path = Path(db).resolve()
    key_file = path.with_name(path.stem + "-secret.key")
    try:
        return _read_key(key_file)
    except FileNotFoundError:
        pass
    key_file.parent.mkdir(parents=True, exist_ok=True)
    # Written whole under a temporary name, then linked into place: link() is atomic and fails
    # when the name exists (an O_EXCL create that cannot be seen half-written), so of two
    # processes starting at once one key wins and both read it complete.
    fd, tmp = tempfile.mkstemp(prefix=key_file.name + ".", suffix=".tmp", dir=key_file.parent)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:  # mkstemp: mode 0600
            f.write(secrets.token_hex(32))
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, key_file)
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    return _read_key(key_file)


def _read_key(key_file: Path) -> str:
    key = key_file.read_text(encoding="ascii").strip()
    if not key:
        raise ConfigError(f"the signing key file {key_file} is empty: delete it or set SECRET_KEY")
    return key


CONFIG_FILE = "paperalerts.toml"


def find_config(cwd: Path, environ: Mapping[str, str]) -> Path | None:
    """The config file in effect: PAPERALERTS_CONFIG (which must exist), else the first
    ``paperalerts.toml`` in `cwd` or a directory above it, else None."""
    named = environ.get("PAPERALERTS_CONFIG", "")
    if named:
        path = Path(named).expanduser().resolve()
        if not path.is_file():
            raise ConfigError(f"PAPERALERTS_CONFIG names {path}, which is not a file")
        return path
    for directory in (cwd, *cwd.parents):
        if (directory / CONFIG_FILE).is_file():
            return directory / CONFIG_FILE
    return None


def read_config(path: Path) -> dict[str, object]:
    """The settings a config file sets; ConfigError naming the file and the problem for bad
    TOML or an unknown name. A relative SQLite path or outbox is made relative to the file."""
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"cannot read {path}: {e}") from e
    unknown = sorted(set(values) - (set(Settings.model_fields) - {"config"}))
    if unknown:
        raise ConfigError(f"{path}: unknown setting {unknown[0]!r} (names are the environment's "
                          f"without PAPERALERTS_, in lower case)")
    url = values.get("database_url")
    if isinstance(url, str) and url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        db = Path(url.removeprefix("sqlite:///"))
        values["database_url"] = f"sqlite:///{path.parent / db}"
    outbox = values.get("outbox_dir")
    if isinstance(outbox, str):
        values["outbox_dir"] = str(path.parent / outbox)
    return values


def load_settings(cwd: Path, environ: Mapping[str, str]) -> Settings:
    """The settings for a process started in `cwd` with `environ` (see the module docstring):
    each setting from the environment, else the config file, else its default."""
    path = find_config(cwd, environ)
    values = read_config(path) if path else {}
    in_env = {k.upper() for k in environ}
    chosen = {k: v for k, v in values.items() if f"PAPERALERTS_{k.upper()}" not in in_env}
    if path is not None:
        chosen["config"] = str(path)
    return Settings(**chosen)  # type: ignore[arg-type]  # checked by pydantic


def sqlite_path(database_url: str) -> Path | None:
    """The absolute file of a SQLite database URL (None for another database or in memory)."""
    if not database_url.startswith("sqlite:///") or database_url == "sqlite:///:memory:":
        return None
    return Path(database_url.removeprefix("sqlite:///").split("?")[0]).resolve()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once (environment, config file, defaults)."""
    return load_settings(Path.cwd(), os.environ)
