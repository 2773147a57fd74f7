"""Writes: importing tracks and labels, consensus. Views, commands and tasks call these; none imports torch."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from ml.audio import AudioDecodeError, decode_validate
from ml.cache import file_sha256  # torch-free: the same hash the embedding cache keys on
from ml.keys import NO_KEY_LABELS, Key, KeyParseError

from .models import Annotation, Track

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


@dataclass(frozen=True)
class LabelValue:
    """What a person said about a track: a key, or one of the no-key labels."""

    label: str
    key: Key | None = None

    @classmethod
    def parse(cls, text: str) -> LabelValue:
        cleaned = text.strip()
        normalised = cleaned.lower().replace("-", "_").replace(" ", "_")
        if normalised in NO_KEY_LABELS:
            return cls(label=normalised)
        if normalised in ("x", "n", "none", "atonal"):
            return cls(label=Annotation.Label.NO_KEY)
        return cls(label=Annotation.Label.KEY, key=Key.parse(cleaned))


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
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False, suffix=".part") as handle:
            temporary = Path(handle.name)
        try:
            shutil.copyfile(path, temporary)
            os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)
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
    `queue_analysis=False` and queue the new ids in batches themselves (track_analysis_queue).
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
    except ImportRejected as error:
        return ImportOutcome(source=source, error=str(error))
    except AudioDecodeError as error:
        # ml.audio names the file it read; uploads are read from a temporary path the user never saw.
        return ImportOutcome(source=source, error=str(error).removeprefix(f"{path}: "))
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
                transaction.on_commit(lambda: track_analysis_queue(track_ids=[track.id]))
    except IntegrityError:
        # Another import of the same audio won the race; that one is the track.
        track = Track.objects.get(content_hash=content_hash)
        return ImportOutcome(source=source, track=track, created=False)
    return ImportOutcome(source=source, track=track, created=True, label_imported=label_imported)


ANALYSIS_BATCH = 16


def track_analysis_queue(*, track_ids: list[int]) -> None:
    """Queue embedding (gpu queue; it chains prediction), in batches so a GPU worker embeds many tracks
    per forward pass. Called after the creating transaction commits."""
    from .tasks import embed_tracks_task

    for start in range(0, len(track_ids), ANALYSIS_BATCH):
        embed_tracks_task.delay(track_ids[start : start + ANALYSIS_BATCH])


@transaction.atomic
def annotation_import(*, track: Track, label: LabelValue, user: AbstractBaseUser | None = None) -> bool:
    """Attach an existing label (from a CSV or dataset) as a trusted annotation; idempotent per track."""
    if Annotation.objects.filter(track=track, source=Annotation.Source.IMPORT).exists():
        return False
    Annotation.objects.create(
        track=track,
        annotator=user if user is not None and user.is_authenticated else None,
        label=label.label,
        key_index=label.key.index if label.key else None,
        source=Annotation.Source.IMPORT,
    )
    track_consensus_refresh(track=track)
    return True


@transaction.atomic
def track_consensus_refresh(*, track: Track) -> Track:
    """Recompute consensus from the annotations: review decision > imported label > agreeing annotators."""
    track = Track.objects.select_for_update().get(pk=track.pk)
    annotations = list(track.annotations.order_by("id"))
    by_annotators = [a for a in annotations if a.source == Annotation.Source.ANNOTATOR]
    decided = [a for a in annotations if a.source in (Annotation.Source.REVIEW, Annotation.Source.IMPORT)]
    track.annotation_count = len(by_annotators)
    consensus: Annotation | None = None
    track.needs_review = False
    if decided:
        consensus = max(decided, key=lambda a: (a.source == Annotation.Source.REVIEW, a.id))
    elif len(by_annotators) >= settings.KEYWEB["ANNOTATIONS_REQUIRED"]:
        opinions = {(a.label, a.key_index) for a in by_annotators}
        if len(opinions) == 1:
            consensus = by_annotators[-1]
        else:
            track.needs_review = True
    if consensus is None:
        track.consensus_label, track.consensus_key, track.consensus_at = "", None, None
    elif (track.consensus_label, track.consensus_key) != (consensus.label, consensus.key_index):
        track.consensus_label, track.consensus_key = consensus.label, consensus.key_index
        track.consensus_at = timezone.now()
    track.save(
        update_fields=["annotation_count", "needs_review", "consensus_label", "consensus_key", "consensus_at"]
    )
    return track


def labels_csv_read(path: Path) -> dict[Path, LabelValue]:
    """A `path,key` CSV → {absolute path: label}; relative paths are resolved against the CSV's folder."""
    import csv

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


def leases_expire() -> int:
    """Clear leases that ran out, returning their tracks to the queue."""
    return Track.objects.filter(lease_expires_at__lt=timezone.now()).update(
        lease_user=None, lease_expires_at=None
    )
