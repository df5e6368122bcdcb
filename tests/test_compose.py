"""docker-compose.yml and the Dockerfile, checked without a Docker engine: the services the
README promises, scaling workers, healthchecks, volumes, every `paperalerts` command they run
exists in the CLI with the options given, every PAPERALERTS_* name is a setting."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from paperalerts.edges.config import Settings
from paperalerts.faces.cli import app

REPO = Path(__file__).resolve().parent.parent
COMPOSE: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
SETTINGS_ENV = {f"PAPERALERTS_{name.upper()}" for name in Settings.model_fields}


def argv(command: Any) -> list[str]:
    """A compose command (list, or string run by a shell) as an argv list."""
    return list(command) if isinstance(command, list) else shlex.split(command)


def healthcheck_argv(test: list[str]) -> list[str]:
    kind, *rest = test
    return shlex.split(rest[0]) if kind == "CMD-SHELL" else rest


def paperalerts_commands() -> list[tuple[str, list[str]]]:
    """(where, argv after `paperalerts`) for every paperalerts command compose and the
    Dockerfile run, healthchecks included."""
    found = []
    for name, svc in SERVICES.items():
        cmds = []
        if "command" in svc:
            cmds.append(("command", argv(svc["command"])))
        if "healthcheck" in svc:
            cmds.append(("healthcheck", healthcheck_argv(svc["healthcheck"]["test"])))
        for what, cmd in cmds:
            if cmd and cmd[0] == "paperalerts":
                found.append((f"{name} {what}", cmd[1:]))
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if line.startswith(("CMD", "ENTRYPOINT")):
            cmd = yaml.safe_load(line.split(None, 1)[1])
            if cmd[0] == "paperalerts":
                found.append((f"Dockerfile {line.split()[0]}", cmd[1:]))
    return found


def test_compose_has_every_role_and_service() -> None:
    """web, worker, beat, Redis, PostgreSQL, mailpit, a one-shot migration, and Flower only
    under its optional profile."""
    assert {"web", "worker", "beat", "redis", "postgres", "mailpit", "migrate", "flower"} <= set(
        SERVICES
    )
    assert SERVICES["flower"]["profiles"] == ["flower"]
    assert all("profiles" not in s for n, s in SERVICES.items() if n != "flower")
    assert SERVICES["migrate"]["command"] == ["paperalerts", "init"]
    assert SERVICES["migrate"]["restart"] == "no"
    for role in ("web", "worker", "beat"):
        deps = SERVICES[role]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully"
        assert deps["postgres"]["condition"] == deps["redis"]["condition"] == "service_healthy"


def _claims(svc: dict[str, Any]) -> set[tuple[str, str]]:
    """What a container of `svc` takes that no other container may: its fixed name, hostname,
    and the host side of each published port."""
    claims = {("container name", str(svc[k])) for k in ("container_name", "hostname") if k in svc}
    for port in svc.get("ports", []):
        host = str(port).rsplit(":", 1)[0] if ":" in str(port) else ""
        if host:
            claims.add(("host port", host))
    return claims


def test_workers_scale() -> None:
    """`--scale worker=4` works: four identical worker replicas claim no name or host port
    that another replica or service holds, each pings only itself in its healthcheck, and the
    published host ports of all services are distinct."""
    worker = SERVICES["worker"]
    replicas = [_claims(worker) for _ in range(4)]
    assert all(not (a & b) for i, a in enumerate(replicas) for b in replicas[i + 1:])
    held: dict[tuple[str, str], str] = {}
    for name, svc in SERVICES.items():
        for claim in _claims(svc):
            assert claim not in held, f"{name} and {held[claim]} both take {claim}"
            held[claim] = name
    ping = healthcheck_argv(worker["healthcheck"]["test"])
    assert ping[:5] == ["celery", "-A", "paperalerts.faces.tasks", "inspect", "ping"]
    assert ping[-2:] == ["-d", "celery@$$HOSTNAME"]  # its own replica, not any worker
    assert argv(worker["command"])[:2] == ["paperalerts", "worker"]


def test_roles_share_one_configuration_on_redis_and_postgres() -> None:
    """web, worker, beat and migrate run the same image with the same environment: PostgreSQL,
    Redis as the broker, and SMTP into mailpit by default."""
    envs = [SERVICES[r]["environment"] for r in ("web", "worker", "beat", "migrate")]
    assert all(e == envs[0] for e in envs)
    env = envs[0]
    assert env["PAPERALERTS_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "@postgres:5432/" in env["PAPERALERTS_DATABASE_URL"]
    assert env["PAPERALERTS_BROKER_URL"] == "redis://redis:6379/0"
    assert "mailpit:1025" in env["PAPERALERTS_SMTP_URL"]
    assert "?" in env["PAPERALERTS_SECRET_KEY"]  # required: compose refuses to start without it


def test_every_long_running_service_has_a_healthcheck_and_data_volumes() -> None:
    """Healthchecks on every service but the one-shot migration; Redis and PostgreSQL keep
    their data in named volumes."""
    for name, svc in SERVICES.items():
        if name != "migrate":
            assert svc.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    assert {"redis-data", "postgres-data"} <= set(COMPOSE["volumes"])
    assert "redis-data:/data" in SERVICES["redis"]["volumes"]
    assert "postgres-data:/var/lib/postgresql/data" in SERVICES["postgres"]["volumes"]


@pytest.mark.parametrize(("where", "args"), paperalerts_commands())
def test_every_paperalerts_command_exists_with_its_options(where: str, args: list[str]) -> None:
    """Each `paperalerts ...` that compose or the Dockerfile runs parses in the real CLI (its
    options included: `--help` is answered only after the options before it parsed)."""
    result = CliRunner().invoke(app, [*args, "--help"])
    assert result.exit_code == 0, f"{where}: paperalerts {' '.join(args)}\n{result.output}"


def test_the_commands_cover_every_role() -> None:
    """The roles compose runs are the CLI's web, worker, beat, init (and status for beat)."""
    firsts = {args[0] for _, args in paperalerts_commands()}
    assert {"web", "worker", "beat", "init", "status"} <= firsts


def test_every_paperalerts_environment_name_is_a_setting() -> None:
    """Every PAPERALERTS_* name in compose (and ${...} references) is a field of Settings."""
    text = (REPO / "docker-compose.yml").read_text()
    names = set(re.findall(r"\bPAPERALERTS_[A-Z_]+\b", text)) - {"PAPERALERTS_PORT"}
    assert names, "compose configures paperalerts through its settings"
    assert names <= SETTINGS_ENV, names - SETTINGS_ENV
    for svc in SERVICES.values():
        for key in svc.get("environment", {}) or {}:
            if key.startswith("PAPERALERTS_"):
                assert key in SETTINGS_ENV, key


def test_worker_healthcheck_pings_the_celery_app_the_cli_runs() -> None:
    """The worker healthcheck pings `paperalerts.faces.tasks`, the app `paperalerts worker`
    runs, and that module's app is importable."""
    test = healthcheck_argv(SERVICES["worker"]["healthcheck"]["test"])
    assert test[:3] == ["celery", "-A", "paperalerts.faces.tasks"]
    import paperalerts.faces.tasks

    assert paperalerts.faces.tasks.app.main == "paperalerts"


def test_dockerfile_copies_what_exists_and_runs_unprivileged() -> None:
    """The image builds from files in the repository and runs as a non-root user."""
    text = (REPO / "Dockerfile").read_text()
    for line in text.splitlines():
        if line.startswith("COPY") and "--from" not in line:
            for src in line.split()[1:-1]:
                assert (REPO / src).exists(), src
    assert re.search(r"^USER (?!root)\w+", text, re.M)
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored and "src" not in ignored


# --- issue 19: the key kept in .env, optional services on loopback, the laptop volume ----------

KEY_SCRIPT = REPO / "scripts" / "compose-env.sh"


def _key_step(where: Path, **env: str) -> str:
    """Run the README's one-time key step for real against a compose directory `where`."""
    import os
    import subprocess

    e = {k: v for k, v in os.environ.items() if k != "PAPERALERTS_SECRET_KEY"} | env
    r = subprocess.run(["sh", str(KEY_SCRIPT), str(where)], capture_output=True, text=True,
                       env=e, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


def _env_file(where: Path) -> dict[str, str]:
    lines = (where / ".env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def test_the_secret_key_is_written_once_into_env_and_reused(tmp_path: Path) -> None:
    """The one-time step writes a random 64-hex-digit key into .env (owner-only), and running it
    again (the README followed a second time) keeps that key instead of making a new one."""
    _key_step(tmp_path)
    key = _env_file(tmp_path)["PAPERALERTS_SECRET_KEY"]
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    assert (tmp_path / ".env").stat().st_mode & 0o077 == 0
    assert "kept" in _key_step(tmp_path, PAPERALERTS_SECRET_KEY="another")
    assert _env_file(tmp_path)["PAPERALERTS_SECRET_KEY"] == key
    other = tmp_path / "other"
    other.mkdir()
    _key_step(other)
    assert _env_file(other)["PAPERALERTS_SECRET_KEY"] != key  # never a shared default


def test_the_key_step_keeps_a_key_already_in_use(tmp_path: Path) -> None:
    """An operator who exported a key the old way gets that key written (links already mailed
    stay valid), and the rest of an existing .env is kept."""
    (tmp_path / ".env").write_text("POSTGRES_PASSWORD=s3cret")  # no final newline
    _key_step(tmp_path, PAPERALERTS_SECRET_KEY="k" * 64)
    assert _env_file(tmp_path) == {
        "POSTGRES_PASSWORD": "s3cret", "PAPERALERTS_SECRET_KEY": "k" * 64}


def test_compose_reads_the_key_from_env_and_says_how_to_make_it() -> None:
    """Every role takes the key from compose's variables (which .env feeds), and a missing key
    stops compose with the one-time step named; the README and compose's header document the
    step, not an `export` that a new shell loses; .env is never committed nor built in."""
    key = SERVICES["web"]["environment"]["PAPERALERTS_SECRET_KEY"]
    assert key.startswith("${PAPERALERTS_SECRET_KEY:?") and "scripts/compose-env.sh" in key
    readme = (REPO / "README.md").read_text()
    header = (REPO / "docker-compose.yml").read_text().split("\nx-app")[0]
    for doc in (readme, header):
        assert "sh scripts/compose-env.sh" in doc
        assert "export PAPERALERTS_SECRET_KEY" not in doc
    assert ".env" in (REPO / ".gitignore").read_text().split()
    assert ".env" in (REPO / ".dockerignore").read_text().split()


def test_only_the_web_app_listens_beyond_loopback() -> None:
    """mailpit's UI (every email sent) and Flower (no login; it can stop workers) publish on
    127.0.0.1 only; the web app is the one service published on every interface."""
    for name, svc in SERVICES.items():
        for port in svc.get("ports", []):
            if name != "web":
                assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port}"
    assert SERVICES["mailpit"]["ports"] and SERVICES["flower"]["ports"]


def test_the_laptop_docker_run_line_keeps_its_data_in_a_volume() -> None:
    """The Dockerfile's `docker run` line mounts a named volume on the working directory where
    laptop mode keeps the SQLite database, its key and the outbox, and that directory exists
    and belongs to the unprivileged user (a fresh named volume copies its owner)."""
    text = (REPO / "Dockerfile").read_text()
    run_line = next(line for line in text.splitlines() if "docker run" in line)
    workdir = re.findall(r"^WORKDIR (\S+)", text, re.M)[-1]
    user = re.findall(r"^USER (\S+)", text, re.M)[-1]
    volume = re.search(r"-v ([\w.-]+):(\S+)", run_line)
    assert volume and volume.group(2) == workdir, run_line
    assert "paperalerts run" in run_line
    assert re.search(rf"mkdir (-p )?{workdir}\b.*chown {user}", text)
