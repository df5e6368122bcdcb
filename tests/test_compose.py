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
