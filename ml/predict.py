"""Window embeddings of many audio files for `python -m ml predict`, in a pool of worker processes.

Decoding, resampling and the backbone's analysis are per file and CPU-bound, so on a multi-core
machine one single-threaded process per core beats one process with a multi-threaded torch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
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
    paths: Sequence[str | os.PathLike],
    *,
    backbone_name: str,
    workers: int | None = None,
    backbone=None,
) -> Iterator[tuple[np.ndarray | None, str | None]]:
    """(embeddings, None) or (None, error message) per file, in order.

    With `workers` > 1 (default: the CPU count) and enough files, files are embedded by that many
    processes, each building its own backbone (this process builds none); else by `backbone` (built
    here when not given). Raises ValueError when the backbone cannot be built (e.g. missing weights).
    """
    workers = workers or os.cpu_count() or 1
    # Myna is GPU-bound and its weights are large: it stays in one process.
    if workers > 1 and len(paths) >= MIN_FILES_FOR_POOL and backbone_name != "myna_vertical":
        with ProcessPoolExecutor(
            max_workers=workers, initializer=_start_worker, initargs=(backbone_name,)
        ) as pool:
            try:
                yield from pool.map(_embed_in_worker, [str(Path(path)) for path in paths], chunksize=2)
            except BrokenProcessPool as error:
                raise ValueError(
                    f"the {backbone_name!r} backbone could not start in a worker process"
                ) from error
        return
    if backbone is None:
        from ml.backbones import get_backbone

        backbone = get_backbone(backbone_name)
    for path in paths:
        try:
            yield backbone.window_embeddings(load_audio(path)), None
        except (AudioDecodeError, ValueError) as error:
            yield None, str(error)
