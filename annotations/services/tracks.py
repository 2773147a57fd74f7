"""Importing tracks: file checks, one validating decode, content-addressed storage, the Track row, the
split fixed by the content hash, a `path,key` labels file; analysis is started after commit."""

from __future__ import annotations

import csv
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from ml.audio import AudioDecodeError, decode_validate
from ml.cache import file_sha256  # torch-free: the same hash the embedding cache keys on
from ml.files import write_atomic
from ml.keys import KeyParseError

from .. import dispatch
from ..models import Embedding, Track
from .labels import LabelValue, annotation_import

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS = {
    ".wav": "wav",
    ".flac": "flac",
    ".ogg": "ogg",
    ".oga": "ogg",
    ".mp3": "mp3",
    ".aiff": "aiff",
    ".aif": "aiff",
}


class ImportRejected(ValueError):
    """A file that cannot become a track, with the reason in words the user can act on."""


@dataclass(frozen=True)
class ImportOutcome:
    source: str
    track: Track | None = None
    created: bool = False
    error: str | None = None
    label_imported: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


# An absolute path (two or more components) inside a decoder's message: the server's folders, never shown.
_SERVER_PATH = re.compile(r"(?<![\w.])/(?:[\w.@+-]+/)+[\w.@+-]*")


def decoder_message(error: Exception, *, path: Path, shown_name: str) -> str:
    """A decoder's complaint in plain words for the user: the file named as they know it, no server path
    (libsndfile writes "Error opening '<server temp folder>/upload.wav': Format not recognised.")."""
    text = str(error).removeprefix(f"{os.fspath(path)}: ")
    text = text.replace(os.fspath(path), shown_name)
    text = _SERVER_PATH.sub("(a server folder)", text)
    return re.sub(r"\.{2,}", ".", text)


def duration_check(duration_s: float) -> None:
    """Refuse audio too short to hold a key (KEYWEB_MIN_DURATION_S)."""
    minimum = settings.KEYWEB["MIN_DURATION_S"]
    if duration_s < minimum:
        raise ImportRejected(
            f"the audio is too short ({duration_s:.3g} s); a track must be at least {minimum:g} s long "
            "(KEYWEB_MIN_DURATION_S)"
        )


def split_for_hash(content_hash: str) -> str:
    """Stable split from the content hash: the same audio lands in the same split on every machine."""
    fraction = int(content_hash[:8], 16) / 0x1_0000_0000
    return Track.Split.TEST if fraction < settings.KEYWEB["TEST_FRACTION"] else Track.Split.POOL


def _check_file(path: Path) -> str:
    if not path.is_file():
        raise ImportRejected("not a regular file")
    audio_format = AUDIO_EXTENSIONS.get(path.suffix.lower())
    if audio_format is None:
        raise ImportRejected(
            f"unsupported file type {path.suffix or '(none)'!r}; KeyWeb reads "
            + ", ".join(sorted(set(AUDIO_EXTENSIONS.values())))
        )
    size = path.stat().st_size
    limit = settings.KEYWEB["MAX_UPLOAD_BYTES"]
    if size == 0:
        raise ImportRejected("the file is empty (0 bytes)")
    if size > limit:
        raise ImportRejected(
            f"the file is {size / 1e6:.0f} MB, over the {limit / 1e6:.0f} MB limit (KEYWEB_MAX_UPLOAD_MB)"
        )
    return audio_format


def _store_audio(path: Path, content_hash: str, audio_format: str) -> str:
    """Copy into MEDIA_ROOT under a content-addressed name, atomically; returns the storage name."""
    name = f"audio/{content_hash[:2]}/{content_hash}.{audio_format}"
    target = Path(settings.MEDIA_ROOT) / name
    if not target.exists():
        write_atomic(target, lambda temporary: shutil.copyfile(path, temporary))
    return name


def _tags(path: Path) -> tuple[str, str]:
    try:
        import mutagen

        tags = mutagen.File(path, easy=True)
    except Exception:  # tags are a nicety; a file mutagen can't parse still imports
        return "", ""
    if not tags:
        return "", ""
    return (tags.get("title") or [""])[0][:300], (tags.get("artist") or [""])[0][:300]


def track_import(
    *,
    path: Path,
    user: AbstractBaseUser | None = None,
    original_name: str | None = None,
    label: LabelValue | None = None,
    queue_analysis: bool = True,
) -> ImportOutcome:
    """Validate one audio file by decoding it once, store it, create its Track, queue its analysis.

    Re-importing the same audio (same SHA-256) is a no-op that returns the existing track. Every way the
    file can be bad ends in an outcome with `error` set; nothing else is touched. Bulk importers pass
    `queue_analysis=False` and start analysis of the new ids in batches themselves (dispatch.analysis_start).
    """
    source = original_name or str(path)
    try:
        audio_format = _check_file(path)
        content_hash = file_sha256(path)
        existing = Track.objects.filter(content_hash=content_hash).first()
        if existing is not None:
            label_imported = label is not None and annotation_import(track=existing, label=label, user=user)
            return ImportOutcome(source=source, track=existing, created=False, label_imported=label_imported)
        info, _ = decode_validate(path, max_duration_s=settings.KEYWEB["MAX_DURATION_S"])
        duration_check(info.duration_s)
    except ImportRejected as error:
        return ImportOutcome(source=source, error=str(error))
    except AudioDecodeError as error:
        # ml.audio names the file it read; uploads are read from a temporary path the user never saw.
        shown_name = Path(original_name or path.name).name
        return ImportOutcome(source=source, error=decoder_message(error, path=path, shown_name=shown_name))
    except OSError as error:
        return ImportOutcome(source=source, error=f"could not read the file: {error.strerror or error}")

    title, artist = _tags(path)
    display_name = Path(original_name or path.name).name
    storage_name = _store_audio(path, content_hash, audio_format)
    try:
        with transaction.atomic():
            track = Track.objects.create(
                audio=storage_name,
                original_filename=display_name[:500],
                content_hash=content_hash,
                size_bytes=path.stat().st_size,
                audio_format=audio_format,
                title=title or Path(display_name).stem[:300],
                artist=artist,
                duration_s=info.duration_s,
                sample_rate=info.sample_rate,
                channels=info.channels,
                split=split_for_hash(content_hash),
                imported_by=user if user is not None and user.is_authenticated else None,
            )
            label_imported = label is not None and annotation_import(track=track, label=label, user=user)
            if queue_analysis:
                dispatch.analysis_start(track_ids=[track.id])
    except IntegrityError:
        # Another import of the same audio won the race; that one is the track.
        track = Track.objects.get(content_hash=content_hash)
        return ImportOutcome(source=source, track=track, created=False)
    return ImportOutcome(source=source, track=track, created=True, label_imported=label_imported)


def labels_csv_read(path: Path) -> dict[Path, LabelValue]:
    """A `path,key` CSV → {absolute path: label}; relative paths are resolved against the CSV's folder."""

    labels: dict[Path, LabelValue] = {}
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"path", "key"} <= {f.strip() for f in reader.fieldnames}:
            raise ImportRejected(f"{path}: the first line must be the header 'path,key'")
        for line_number, row in enumerate(reader, start=2):
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
            if not row.get("path"):
                raise ImportRejected(f"{path}, line {line_number}: empty path")
            try:
                value = LabelValue.parse(row.get("key", ""))
            except KeyParseError as error:
                raise ImportRejected(f"{path}, line {line_number}: {error}") from error
            file_path = Path(row["path"])
            if not file_path.is_absolute():
                file_path = path.parent / file_path
            labels[file_path.resolve()] = value
    return labels


@transaction.atomic
def track_delete(*, track: Track) -> None:
    """Delete a track with its annotations, predictions and embeddings; its files go once that commits.
    The audio file is content-addressed, so it is kept if another track row still points at it."""
    audio_name = track.audio.name
    embedding_paths = list(Embedding.objects.filter(track=track).values_list("path", flat=True))
    track.delete()

    def remove_files() -> None:
        paths = [Path(p) for p in embedding_paths]
        if audio_name and not Track.objects.filter(audio=audio_name).exists():
            paths.append(Path(settings.MEDIA_ROOT) / audio_name)
        for path in paths:
            try:
                path.unlink(missing_ok=True)
            except OSError as error:
                logger.warning("could not remove %s of a deleted track: %s", path, error)

    transaction.on_commit(remove_files)
