"""The one way ml writes files: to a temporary name in the same folder, then renamed into place."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np


def write_atomic(path: str | os.PathLike, write: Callable[[Path], None], *, mode: int = 0o644) -> Path:
    """Call `write(temp_path)`, then rename the temp file onto `path`; readers never see half a file.

    The temp file lives in the target's folder (so the rename is atomic on one file system), keeps the
    target's suffix (writers such as soundfile pick the format from it) and is removed whatever fails.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(
        prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent
    )
    os.close(handle)
    temp_path = Path(temp_name)
    try:
        write(temp_path)
        os.chmod(temp_path, mode)  # mkstemp makes it private; caches and checkpoints are shared
        os.replace(temp_path, path)
    except BaseException:
        temp_path.unlink(missing_ok=True)
        raise
    return path


def npy_write_atomic(path: str | os.PathLike, array: np.ndarray) -> Path:
    def write(temp_path: Path) -> None:
        with temp_path.open("wb") as stream:
            np.save(stream, array, allow_pickle=False)

    return write_atomic(path, write)


def json_write_atomic(path: str | os.PathLike, value: object, *, indent: int | None = 2) -> Path:
    return write_atomic(path, lambda temp_path: temp_path.write_text(json.dumps(value, indent=indent) + "\n"))


def text_write_atomic(path: str | os.PathLike, text: str) -> Path:
    return write_atomic(path, lambda temp_path: temp_path.write_text(text))
