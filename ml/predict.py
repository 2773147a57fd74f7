"""Window embeddings of many audio files for `python -m ml predict`, in a pool of worker processes.

Decoding, resampling and the backbone's analysis are per file and CPU-bound, so on a multi-core
machine one single-threaded process per core beats one process with a multi-threaded torch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ml.audio import AudioDecodeError, load_audio

# Below this many files, starting worker processes (each imports torch) costs more than it saves.
MIN_FILES_FOR_POOL = 8
_worker_backbone = None


def _start_worker(backbone_name: str) -> None:
    global _worker_backbone
    import torch

    from ml.backbones import get_backbone

    torch.set_num_threads(1)
    _worker_backbone = get_backbone(backbone_name, **({"device": "cpu"} if backbone_name == "skey" else {}))


def _embed_in_worker(path: str) -> tuple[np.ndarray | None, str | None]:
    try:
        return _worker_backbone.window_embeddings(load_audio(path)), None
    except (AudioDecodeError, ValueError) as error:
        return None, str(error)


def embed_files(
    paths: Sequence[str | os.PathLike], *, backbone, workers: int | None = None
) -> Iterator[tuple[np.ndarray | None, str | None]]:
    """(embeddings, None) or (None, error message) per file, in order.

    With `workers` > 1 (default: the CPU count) and enough files, files are embedded by that many
    processes, each with its own copy of the backbone; else by `backbone` in this process.
    """
    workers = workers or os.cpu_count() or 1
    if workers > 1 and len(paths) >= MIN_FILES_FOR_POOL and backbone.name != "myna_vertical":
        # Myna is GPU-bound and its weights are large: it stays in one process.
        with ProcessPoolExecutor(
            max_workers=workers, initializer=_start_worker, initargs=(backbone.name,)
        ) as pool:
            yield from pool.map(_embed_in_worker, [str(Path(path)) for path in paths], chunksize=2)
        return
    for path in paths:
        try:
            yield backbone.window_embeddings(load_audio(path)), None
        except (AudioDecodeError, ValueError) as error:
            yield None, str(error)
