"""Shared fixtures: a real Celery worker process against the real Redis broker and the test database."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def _worker_environment() -> dict[str, str]:
    """The worker must open the *test* database that pytest-django created, not the configured one."""
    environment = dict(os.environ)
    name = connection.settings_dict["NAME"]
    if connection.vendor == "sqlite":
        environment["KEYWEB_SQLITE_PATH"] = str(name)
    else:
        parts = urlsplit(os.environ["DATABASE_URL"])
        environment["DATABASE_URL"] = urlunsplit(parts._replace(path=f"/{name}"))
    environment["PYTHONPATH"] = str(ROOT)
    return environment


def _start_worker(environment: dict[str, str], name: str) -> subprocess.Popen:
    """A real `celery worker` subprocess consuming both queues from the real Redis broker."""
    from keyweb.celery import app

    log_path = Path(settings.VAR_DIR) / f"worker-{time.monotonic_ns()}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "keyweb",
                "worker",
                "-Q",
                "default,gpu",
                "--pool",
                "solo",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-n",
                f"{name}@%h",
                "--loglevel",
                "INFO",
            ],
            cwd=ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    process.log_path = log_path
    deadline = time.monotonic() + 60
    while not app.control.ping(destination=[f"{name}@{socket.gethostname()}"], timeout=0.5):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the Celery worker did not start:\n{log_path.read_text()[-3000:]}")
    return process


def _stop_worker(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture
def celery_worker_process(transactional_db):
    """A real `celery worker` subprocess consuming both queues from the real Redis broker."""
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()  # no stale messages from earlier tests
    process = _start_worker(_worker_environment(), f"test-{os.getpid()}")
    try:
        yield process
    finally:
        _stop_worker(process)


@pytest.fixture
def celery_workers(transactional_db):
    """Start real workers with extra environment (`start(KEYWEB_STALE_AFTER_S="6")`), e.g. to kill one
    mid-task and start another; every worker still running is stopped at the end."""
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    started: list[subprocess.Popen] = []

    def start(**environment: str) -> subprocess.Popen:
        process = _start_worker(
            {**_worker_environment(), **environment}, f"test-{os.getpid()}-{len(started)}"
        )
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in started:
            _stop_worker(process)


def wait_for(condition, *, timeout: float = 60.0, interval: float = 0.2, message: str = "condition"):
    """Poll `condition()` until it returns something truthy; fail with `message` after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {message}")
