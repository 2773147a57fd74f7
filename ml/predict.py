"""Window embeddings of many audio files for `python -m ml predict`, in a pool of worker processes, and
what it reports per file.

Decoding, resampling and the backbone's analysis are per file and CPU-bound, so on a multi-core
machine one single-threaded process per core beats one process with a multi-threaded torch.

Importing torch takes ~1.5 s on one core before any worker can start, leaving the other cores idle:
`Prefetch` decodes the first files meanwhile in a process forked before the import (a thread would
fight the import for the GIL), into memory-mapped files that workers forked afterwards share instead
of decoding those files again.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np

from ml.audio import AudioDecodeError, load_audio
from ml.keys import Key

# Below this many files, starting worker processes (each imports torch) costs more than it saves.
MIN_FILES_FOR_POOL = 8
# Prefetched audio is held until the pool has forked; 16 kHz mono float32 is 3.8 MB per minute.
PREFETCH_MAX_BYTES = 512 * 2**20
# `ml predict` applies the head to runs of this many files, or of what arrived within this many seconds.
PREDICT_BATCH_FILES = 16
PREDICT_BATCH_S = 1.0
_worker_backbone = None
# Audio decoded by Prefetch, by position in the file list; inherited by forked workers.
_prefetched: dict[int, np.ndarray] = {}


def _scratch_dir() -> str | None:
    """Memory-backed /dev/shm where there is one (Linux), else the temporary directory."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def _prefetch_run(paths: list[str], folder: str, stop, max_bytes: int) -> None:
    held = 0
    for index, path in enumerate(paths):
        if stop.is_set() or held >= max_bytes:
            return
        try:
            audio = load_audio(path)
        except (AudioDecodeError, ValueError):
            continue  # decoded again where it is embedded, which reports the error in order
        partial = os.path.join(folder, f"{index}.partial.npy")
        np.save(partial, audio)
        os.replace(partial, os.path.join(folder, f"{index}.npy"))  # only whole files are read
        held += audio.nbytes


class Prefetch:
    """Decodes `paths` in order in a forked process until `finish()` (or the byte cap); a no-op where
    processes cannot fork."""

    def __init__(self, paths: Sequence[str | os.PathLike], *, max_bytes: int = PREFETCH_MAX_BYTES) -> None:
        self._audio: dict[int, np.ndarray] = {}
        self._process = None
        if not paths or "fork" not in multiprocessing.get_all_start_methods():
            return
        context = multiprocessing.get_context("fork")
        try:
            self._folder = tempfile.mkdtemp(prefix="keyweb-prefetch-", dir=_scratch_dir())
        except OSError:
            return  # no scratch space: the files are decoded where they are embedded
        self._stop = context.Event()
        arguments = ([str(path) for path in paths], self._folder, self._stop, max_bytes)
        process = context.Process(target=_prefetch_run, args=arguments, name="keyweb-prefetch")
        try:
            process.start()
        except OSError:
            shutil.rmtree(self._folder, ignore_errors=True)
            return  # no process to spare: likewise
        self._process = process

    def wait(self) -> dict[int, np.ndarray]:
        """Let every path be decoded (up to the byte cap), then `finish`."""
        if self._process is not None:
            self._process.join()
        return self.finish()

    def finish(self) -> dict[int, np.ndarray]:
        """Stop after the file being decoded; the audio decoded so far, by position (idempotent).

        The arrays map the decoded files copy-on-write; the files are unlinked here already (the
        mappings keep the data), so nothing is left behind however the process ends.
        """
        if self._process is None:
            return self._audio
        self._stop.set()
        self._process.join()
        self._process = None
        try:
            for name in os.listdir(self._folder):
                stem, _, suffix = name.partition(".")
                if suffix == "npy":
                    self._audio[int(stem)] = np.load(os.path.join(self._folder, name), mmap_mode="c")
        finally:
            shutil.rmtree(self._folder, ignore_errors=True)
        return self._audio


def _start_worker(backbone_name: str) -> None:
    global _worker_backbone
    import torch

    from ml.backbones import get_backbone

    torch.set_num_threads(1)
    _worker_backbone = get_backbone(backbone_name, **({"device": "cpu"} if backbone_name == "skey" else {}))


def _embed_in_worker(item: tuple[int, str]) -> tuple[np.ndarray | None, str | None]:
    index, path = item
    try:
        audio = _prefetched.pop(index, None)
        return _worker_backbone.window_embeddings(load_audio(path) if audio is None else audio), None
    except (AudioDecodeError, ValueError) as error:
        return None, str(error)


def embed_files(
    paths: Sequence[str | os.PathLike],
    *,
    backbone_name: str,
    workers: int | None = None,
    backbone=None,
    decoded: dict[int, np.ndarray] | None = None,
) -> Iterator[tuple[np.ndarray | None, str | None]]:
    """(embeddings, None) or (None, error message) per file, in order.

    With `workers` > 1 (default: the CPU count) and enough files, files are embedded by that many
    processes, each building its own backbone (this process builds none); else by `backbone` (built
    here when not given). `decoded` (from `Prefetch.finish` on the same paths) is audio already
    decoded, by position, and is consumed; workers inherit it where processes fork. Raises
    ValueError when the backbone cannot be built (e.g. missing weights).
    """
    global _prefetched
    decoded = {} if decoded is None else decoded
    if pooled(paths, backbone_name=backbone_name, workers=workers):
        fork = "fork" in multiprocessing.get_all_start_methods()
        _prefetched = decoded if fork else {}
        try:
            with ProcessPoolExecutor(
                max_workers=workers or os.cpu_count(),
                mp_context=multiprocessing.get_context("fork") if fork else None,
                initializer=_start_worker,
                initargs=(backbone_name,),
            ) as pool:
                items = [(index, str(Path(path))) for index, path in enumerate(paths)]
                results = pool.map(_embed_in_worker, items, chunksize=2)
                decoded.clear()  # every worker has forked with its copy (all start at the first submit)
                try:
                    yield from results
                except BrokenProcessPool as error:
                    raise ValueError(
                        f"the {backbone_name!r} backbone could not start in a worker process"
                    ) from error
        finally:
            _prefetched = {}
        return
    if backbone is None:
        from ml.backbones import get_backbone

        backbone = get_backbone(backbone_name)
    for index, path in enumerate(paths):
        try:
            audio = decoded.pop(index, None)
            yield backbone.window_embeddings(load_audio(path) if audio is None else audio), None
        except (AudioDecodeError, ValueError) as error:
            yield None, str(error)


def pooled(paths: Sequence, *, backbone_name: str, workers: int | None = None) -> bool:
    """Whether `embed_files` uses worker processes for these arguments."""
    workers = workers or os.cpu_count() or 1
    # Myna is GPU-bound and its weights are large: it stays in one process.
    return workers > 1 and len(paths) >= MIN_FILES_FOR_POOL and backbone_name != "myna_vertical"


def result_runs(
    embedded: Iterable[tuple[np.ndarray | None, str | None]],
    *,
    files: int = PREDICT_BATCH_FILES,
    seconds: float = PREDICT_BATCH_S,
) -> Iterator[list[tuple[np.ndarray | None, str | None]]]:
    """Runs of consecutive (embeddings, error) results: `files` of them, or fewer when one arrives
    `seconds` or more after the run's first, so output keeps flowing while the head runs once per run."""
    run, started = [], 0.0
    for result in embedded:
        if not run:
            started = time.monotonic()
        run.append(result)
        if len(run) >= files or time.monotonic() - started >= seconds:
            yield run
            run = []
    if run:
        yield run


def prediction(path: str | os.PathLike, probabilities: np.ndarray, top: int) -> dict:
    """What `ml predict` reports for one file: its most likely key and the `top` best, both notations."""
    ranked = np.argsort(probabilities)[::-1][:top]
    alternatives = [
        {
            "key": Key.from_index(int(i)).mir_eval,
            "camelot": Key.from_index(int(i)).camelot,
            "probability": round(float(probabilities[i]), 4),
        }
        for i in ranked
    ]
    best = alternatives[0]
    return {
        "path": str(path),
        "key": best["key"],
        "camelot": best["camelot"],
        "confidence": best["probability"],
        "top": alternatives,
    }
