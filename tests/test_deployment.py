"""docker/compose.yml is valid and keeps secrets out of the file."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

COMPOSE = Path(__file__).resolve().parent.parent / "docker" / "compose.yml"
SECRETS = {
    "DJANGO_SECRET_KEY": "s",
    "DJANGO_ALLOWED_HOSTS": "keys.example.org",
    "POSTGRES_PASSWORD": "p",
    "REDIS_PASSWORD": "r",
}


def _compose_command() -> list[str]:
    if (
        shutil.which("docker")
        and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    ):
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.skip(
        "neither `docker compose` nor `docker-compose` is installed (.ci/run installs docker-compose)"
    )


def test_compose_config_is_valid_with_secrets_given():
    command = _compose_command()
    result = subprocess.run(
        [*command, "-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
        env={**os.environ, **SECRETS},
    )
    assert result.returncode == 0, result.stderr
    for service in ("web", "worker-gpu", "worker-default", "beat", "redis", "postgres"):
        assert f"  {service}:" in result.stdout


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_compose_refuses_to_run_without_each_secret(missing):
    command = _compose_command()
    environment = {k: v for k, v in {**os.environ, **SECRETS}.items() if k != missing}
    result = subprocess.run(
        [*command, "-f", str(COMPOSE), "config"], capture_output=True, text=True, env=environment
    )
    assert result.returncode != 0
    assert missing in result.stderr
