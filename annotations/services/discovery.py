"""Finding audio files under the paths a user names, never following links out of those paths."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .tracks import AUDIO_EXTENSIONS


@dataclass(frozen=True)
class Found:
    path: Path
    problem: str | None = None  # set when the path must not be imported


def _inside(path: Path, roots: list[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def audio_files_find(paths: list[Path]) -> list[Found]:
    """Files named directly are taken whatever their extension (the import says why a bad one fails);
    folders are walked recursively for audio extensions. A symlink whose target lies outside every given
    path is reported and skipped, and symlinked folders are never descended into."""
    roots = [p.resolve() for p in paths if p.exists()]
    found: list[Found] = []
    seen: set[Path] = set()

    def add(candidate: Path) -> None:
        resolved = candidate.resolve()
        if resolved in seen:
            return
        seen.add(resolved)
        if candidate.is_symlink() and not _inside(resolved, roots):
            found.append(Found(candidate, "skipped: a symbolic link pointing outside the imported folders"))
        else:
            found.append(Found(candidate))

    for path in paths:
        if not path.exists() and not path.is_symlink():
            found.append(Found(path, "no such file or folder"))
        elif path.is_dir():
            for folder, dirnames, filenames in os.walk(path, followlinks=False):
                dirnames.sort()
                for filename in sorted(filenames):
                    candidate = Path(folder) / filename
                    if candidate.suffix.lower() in AUDIO_EXTENSIONS:
                        add(candidate)
        else:
            add(path)
    return found
