"""Run a peer key detector (essentia, madmom, librosa) on audio files in its own venv; keys + wall time.

Each peer has a script in bench/peers/ that runs inside bench/.peers/<peer> (made by
bench/setup_peers.sh) and prints one JSON object; this module starts it, parses its keys with
`Key.parse` (peers spell keys their own way) and returns a PeerRun.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ml.keys import Key, KeyParseError

BENCH_DIR = Path(__file__).resolve().parent
PEERS_DIR = BENCH_DIR / ".peers"
SCRIPTS_DIR = BENCH_DIR / "peers"
PEERS = ("essentia", "madmom", "librosa")
# Every thread-pool knob the peers' numerics may read, so they run under the same limit as KeyWeb.
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


class PeerError(RuntimeError):
    """A peer that is not installed, or whose script failed; the message says which and what to do."""


@dataclass(frozen=True)
class PeerRun:
    """One peer over a list of files. `keys[i]` is None where the peer failed or said something unparseable."""

    peer: str
    version: str
    keys: list[Key | None]
    file_seconds: list[float]  # steady-state decode + key estimation per file
    setup_s: float  # import, model load and one warm-up file
    wall_s: float  # the whole subprocess, interpreter start included
    errors: dict[str, str] = field(default_factory=dict)  # path -> what went wrong

    @property
    def seconds(self) -> float:
        """Time spent on the files themselves (the number throughput is computed from)."""
        return float(sum(self.file_seconds))


def peer_python(peer: str) -> Path:
    return PEERS_DIR / peer / "bin" / "python"


def peer_available(peer: str) -> bool:
    return peer_python(peer).is_file()


def run_peer(
    peer: str, files: Sequence[str | os.PathLike], *, threads: int = 2, timeout_s: float | None = None
) -> PeerRun:
    """Estimate the key of every file with `peer`, in its venv, with `threads` threads for its numerics."""
    if peer not in PEERS:
        raise PeerError(f"unknown peer {peer!r}; choose one of {', '.join(PEERS)}")
    if not peer_available(peer):
        raise PeerError(
            f"peer {peer!r} is not installed in {PEERS_DIR / peer}; run bash bench/setup_peers.sh"
        )
    paths = [str(Path(path).resolve()) for path in files]
    environment = {**os.environ, **dict.fromkeys(_THREAD_VARIABLES, str(threads))}
    with tempfile.NamedTemporaryFile("w", suffix=".txt", prefix=f"{peer}-files-") as file_list:
        file_list.write("\n".join(paths) + "\n")
        file_list.flush()
        command = [
            str(peer_python(peer)),
            str(SCRIPTS_DIR / f"{peer}_keys.py"),
            "--files-from",
            file_list.name,
        ]
        started = time.perf_counter()
        completed = subprocess.run(
            command, capture_output=True, text=True, env=environment, timeout=timeout_s, check=False
        )
        wall_s = time.perf_counter() - started
    if completed.returncode != 0:
        raise PeerError(f"peer {peer!r} exited with {completed.returncode}:\n{completed.stderr[-2000:]}")
    return _parse_output(peer, completed.stdout, paths, wall_s)


def _parse_output(peer: str, stdout: str, paths: list[str], wall_s: float) -> PeerRun:
    # Essentia logs to stdout; the JSON object is always the last line.
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise PeerError(f"peer {peer!r} printed no result; its output ends with:\n{stdout[-2000:]}")
    report = json.loads(lines[-1])
    results = report["results"]
    if [result["path"] for result in results] != paths:
        raise PeerError(f"peer {peer!r} answered for other files than it was given")
    keys: list[Key | None] = []
    errors: dict[str, str] = {}
    for result in results:
        key = None
        if result["error"]:
            errors[result["path"]] = result["error"]
        else:
            try:
                key = Key.parse(result["key"])
            except KeyParseError as error:
                errors[result["path"]] = str(error)
        keys.append(key)
    return PeerRun(
        peer=peer,
        version=str(report["version"]),
        keys=keys,
        file_seconds=[float(result["seconds"]) for result in results],
        setup_s=float(report["setup_s"]),
        wall_s=wall_s,
        errors=errors,
    )
