"""What every peer script prints: keys and per-file wall time as one JSON object (stdlib only).

Peer scripts run inside their own virtual environments (bench/.peers/<peer>), so this module imports
nothing from KeyWeb and nothing outside the standard library.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable


def _files(args: argparse.Namespace) -> list[str]:
    files = list(args.files)
    if args.files_from:
        with open(args.files_from, encoding="utf-8") as handle:
            files += [line.strip() for line in handle if line.strip()]
    return files


def run(*, peer: str, version: str, make_estimator: Callable[[], Callable[[str], str]]) -> int:
    """Time `estimate(path) -> key text` on every file given on the command line; print one JSON object.

    `setup_s` covers building the estimator and one untimed warm-up call on the first file (numba JIT,
    model loading, FFT plans), so `seconds` per file is steady-state decode + key estimation.
    """
    parser = argparse.ArgumentParser(description=f"{peer}: key of each audio file, with wall time")
    parser.add_argument("files", nargs="*")
    parser.add_argument("--files-from", help="text file with one audio path per line")
    args = parser.parse_args()
    files = _files(args)
    if not files:
        parser.error("no audio files given")

    started = time.perf_counter()
    estimate = make_estimator()
    try:
        estimate(files[0])
    except Exception:  # the timed loop below reports the same file's error per file
        pass
    setup_s = time.perf_counter() - started

    results = []
    for path in files:
        file_started = time.perf_counter()
        try:
            key, error = estimate(path), None
        except Exception as exception:  # one bad file must not hide the others' results
            key, error = None, f"{type(exception).__name__}: {exception}"
        results.append(
            {"path": path, "key": key, "error": error, "seconds": time.perf_counter() - file_started}
        )
    json.dump({"peer": peer, "version": version, "setup_s": setup_s, "results": results}, sys.stdout)
    sys.stdout.write("\n")
    return 0
