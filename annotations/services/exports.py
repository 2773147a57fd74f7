"""Labeled-dataset exports, streamed in constant memory: CSV, JSONL, a zip of JAMS files, a GiantSteps-style
zip of `.key` files, optionally with the audio (and the consensus key written into the copies' tags)."""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import shutil
import tempfile
import time
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.db.models import QuerySet

from ml.keys import Key

from ..models import Track
from ..selectors import model_version_active, tracks_with_active_prediction

logger = logging.getLogger(__name__)

FORMATS = ("csv", "jsonl", "jams", "giantsteps")
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson",
    "jams": "application/zip",
    "giantsteps": "application/zip",
}
FILE_NAMES = {
    "csv": "keyweb-labels.csv",
    "jsonl": "keyweb-labels.jsonl",
    "jams": "keyweb-jams.zip",
    "giantsteps": "keyweb-giantsteps.zip",
}
CSV_COLUMNS = [
    "track_id",
    "content_hash",
    "file_name",
    "title",
    "artist",
    "duration_s",
    "split",
    "label",
    "key",
    "camelot",
    "labeled_at",
    "predicted_key",
    "predicted_camelot",
    "predicted_confidence",
    "model_version",
    "annotations",
]
CHUNK_SIZE = 1000
JAMS_VERSION = "0.3.4"
# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class ExportOptions:
    consensus_only: bool = True
    split: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    annotations: bool = False
    audio: bool = False
    write_tags: bool = False


def export_tracks(options: ExportOptions) -> QuerySet[Track]:
    """The tracks an export covers, with the active model's prediction attached, in id order."""
    tracks = tracks_with_active_prediction()
    if options.consensus_only:
        tracks = tracks.exclude(consensus_label="")
    if options.split:
        tracks = tracks.filter(split=options.split)
    if options.since:
        tracks = tracks.filter(consensus_at__gte=options.since)
    if options.until:
        tracks = tracks.filter(consensus_at__lt=options.until)
    if options.annotations:
        tracks = tracks.prefetch_related("annotations__annotator")
    return tracks.order_by("id")


def _iterate(options: ExportOptions) -> Iterator[Track]:
    return export_tracks(options).iterator(chunk_size=CHUNK_SIZE)


def export_record(track: Track, *, model_name: str | None, annotations: bool) -> dict:
    """One track as a flat dict: the row of the CSV and the line of the JSONL."""
    consensus = track.consensus
    predicted = Key.from_index(track.active_key_index) if track.active_key_index is not None else None
    record = {
        "track_id": track.pk,
        "content_hash": track.content_hash,
        "file_name": track.original_filename,
        "title": track.title,
        "artist": track.artist,
        "duration_s": round(track.duration_s, 3),
        "split": track.split,
        "label": track.consensus_label,
        "key": consensus.mir_eval if consensus else "",
        "camelot": consensus.camelot if consensus else "",
        "labeled_at": track.consensus_at.isoformat() if track.consensus_at else "",
        "predicted_key": predicted.mir_eval if predicted else "",
        "predicted_camelot": predicted.camelot if predicted else "",
        "predicted_confidence": round(track.active_confidence, 6) if predicted else None,
        "model_version": model_name if predicted else "",
    }
    if annotations:
        record["annotations"] = [
            {
                "annotator": a.annotator.username if a.annotator else None,
                "label": a.label,
                "key": a.key.mir_eval if a.key else None,
                "source": a.source,
                "created_at": a.created_at.isoformat(),
            }
            for a in track.annotations.all()
        ]
    return record


def _model_name() -> str | None:
    active = model_version_active()
    return active.name if active else None


# --- CSV and JSONL ---------------------------------------------------------------------------------


def csv_cell_safe(value):
    """A text cell a spreadsheet would run as a formula (`=HYPERLINK(...)`, `@SUM(...)`) with a leading
    apostrophe, as OWASP advises; numbers (a negative tuning) and other text pass unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_row_safe(cells: Iterable) -> list:
    """Every cell of a CSV row through `csv_cell_safe`: the one rule for the API's and the dashboard's CSV."""
    return [csv_cell_safe(cell) for cell in cells]


def csv_export(options: ExportOptions, *, rows_per_chunk: int = 200) -> Iterator[bytes]:
    columns = CSV_COLUMNS if options.annotations else CSV_COLUMNS[:-1]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    model_name = _model_name()
    for number, track in enumerate(_iterate(options), start=1):
        record = export_record(track, model_name=model_name, annotations=options.annotations)
        if options.annotations:
            record["annotations"] = json.dumps(record["annotations"], ensure_ascii=False)
        if record["predicted_confidence"] is None:
            record["predicted_confidence"] = ""
        writer.writerow(dict(zip(record, csv_row_safe(record.values()), strict=True)))
        if number % rows_per_chunk == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def jsonl_export(options: ExportOptions, *, rows_per_chunk: int = 200) -> Iterator[bytes]:
    lines: list[str] = []
    model_name = _model_name()
    for track in _iterate(options):
        record = export_record(track, model_name=model_name, annotations=options.annotations)
        lines.append(json.dumps(record, ensure_ascii=False))
        if len(lines) >= rows_per_chunk:
            yield ("\n".join(lines) + "\n").encode()
            lines.clear()
    if lines:
        yield ("\n".join(lines) + "\n").encode()


# --- zip archives ----------------------------------------------------------------------------------


class _Sink(io.RawIOBase):
    """A write-only, non-seekable file for zipfile: it collects the bytes written since the last drain."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._chunks.append(bytes(data))
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def drain(self) -> bytes:
        data, self._chunks = b"".join(self._chunks), []
        return data


class ZipStream:
    """A zip produced front to back as bytes by the standard library's zipfile writing to a non-seekable
    sink: entries carry data descriptors, and ZIP64 records appear wherever sizes, offsets or the entry
    count need them, so exports past 4 GiB stay readable. Memory holds one chunk plus zipfile's small
    per-entry record for the central directory."""

    def __init__(self, *, timestamp: float | None = None) -> None:
        self._sink = _Sink()
        self._zip = zipfile.ZipFile(self._sink, mode="w", compression=zipfile.ZIP_DEFLATED, allowZip64=True)
        self._date_time = time.localtime(timestamp)[:6]

    def entry(self, name: str, chunks: Iterable[bytes], *, compress: bool = True) -> Iterator[bytes]:
        """Yield the bytes of one entry, reading `chunks` lazily."""
        info = zipfile.ZipInfo(name, date_time=max(self._date_time, (1980, 1, 1, 0, 0, 0)))
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        info.external_attr = 0o100644 << 16
        with self._zip.open(info, mode="w", force_zip64=True) as handle:
            for chunk in chunks:
                handle.write(chunk)
                if data := self._sink.drain():
                    yield data
        yield self._sink.drain()

    def close(self) -> Iterator[bytes]:
        """Yield the central directory and the end records."""
        self._zip.close()
        yield self._sink.drain()


class _Names:
    """Unique entry names: the file's stem, or stem.<hash prefix> when two tracks share a stem.

    Keeps one set of the names written (tens of bytes per track), the only thing that grows with the export.
    """

    def __init__(self) -> None:
        self._used: set[str] = set()

    def for_track(self, track: Track) -> str:
        stem = _safe_stem(track.original_filename) or f"track-{track.content_hash[:12]}"
        name = stem if stem.lower() not in self._used else f"{stem}.{track.content_hash[:8]}"
        self._used.add(name.lower())
        return name


def _safe_stem(file_name: str) -> str:
    stem = PurePosixPath(file_name.replace("\\", "/")).name
    stem = stem.rsplit(".", 1)[0] if "." in stem.lstrip(".") else stem
    return re.sub(r"[\x00-\x1f/\\:*?\"<>|]", "_", stem).strip(" .")[:150]


def _file_chunks(path: Path, chunk_size: int = 1 << 16) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            yield chunk


def _audio_entry(
    archive: ZipStream, track: Track, name: str, options: ExportOptions, problems: list[str]
) -> Iterator[bytes]:
    """The audio file (or a tagged copy of it) as `audio/<name>.<ext>`; a missing file becomes a problem."""
    source = Path(settings.MEDIA_ROOT) / track.audio.name
    if not source.is_file():
        problems.append(f"{track.original_filename} (track {track.pk}): audio file missing on the server")
        return
    entry_name = f"audio/{name}.{track.audio_format}"
    key = track.consensus
    if not (options.write_tags and key is not None):
        yield from archive.entry(entry_name, _file_chunks(source), compress=False)
        return
    with tempfile.TemporaryDirectory(prefix="keyweb-tags-") as folder:
        copy = Path(folder) / f"copy.{track.audio_format}"
        shutil.copyfile(source, copy)
        try:
            audio_key_tag_write(path=copy, audio_format=track.audio_format, key=key)
        except Exception as error:  # a file mutagen cannot tag still exports, untagged, and is reported
            logger.warning("could not tag %s: %s", track.original_filename, error)
            problems.append(f"{track.original_filename} (track {track.pk}): key tag not written: {error}")
            shutil.copyfile(source, copy)
        yield from archive.entry(entry_name, _file_chunks(copy), compress=False)


def _problems_entry(archive: ZipStream, problems: list[str]) -> Iterator[bytes]:
    if problems:
        yield from archive.entry("PROBLEMS.txt", ["\n".join(problems).encode() + b"\n"])


def jams_document(track: Track, record: dict) -> dict:
    """A JAMS file for one track: the consensus as a `key_mode` annotation (JAMS has no 'ambiguous', so
    no-key labels are 'N' with KeyWeb's own label in the sandbox), each human annotation if asked."""
    duration = float(track.duration_s)

    def key_mode(value: str, *, annotator: str, validation: str, source: str, label: str) -> dict:
        return {
            "namespace": "key_mode",
            "time": 0.0,
            "duration": duration,
            "data": [{"time": 0.0, "duration": duration, "value": value, "confidence": 1.0}],
            "annotation_metadata": {
                "curator": {"name": "", "email": ""},
                "annotator": {"name": annotator},
                "version": "",
                "corpus": "KeyWeb",
                "annotation_tools": "KeyWeb",
                "annotation_rules": "",
                "validation": validation,
                "data_source": source,
            },
            "sandbox": {"keyweb_label": label},
        }

    annotations = []
    consensus = track.consensus
    if track.consensus_label:
        annotations.append(
            key_mode(
                consensus.jams if consensus else "N",
                annotator="",
                validation="consensus",
                source="KeyWeb consensus",
                label=track.consensus_label,
            )
        )
    for annotation in record.get("annotations") or []:
        key = Key.parse(annotation["key"]) if annotation["key"] else None
        annotations.append(
            key_mode(
                key.jams if key else "N",
                annotator=annotation["annotator"] or "",
                validation=annotation["source"],
                source="KeyWeb annotation",
                label=annotation["label"],
            )
        )
    sandbox = {name: record[name] for name in CSV_COLUMNS if name in record and name != "annotations"}
    return {
        "file_metadata": {
            "title": track.title,
            "artist": track.artist,
            "release": "",
            "duration": duration,
            "identifiers": {"content_hash": track.content_hash, "file_name": track.original_filename},
            "jams_version": JAMS_VERSION,
        },
        "annotations": annotations,
        "sandbox": {"keyweb": sandbox},
    }


def jams_zip_export(options: ExportOptions, *, timestamp: float | None = None) -> Iterator[bytes]:
    archive, names, problems = ZipStream(timestamp=timestamp), _Names(), []
    model_name = _model_name()
    for track in _iterate(options):
        record = export_record(track, model_name=model_name, annotations=options.annotations)
        name = names.for_track(track)
        document = json.dumps(jams_document(track, record), ensure_ascii=False, indent=1)
        yield from archive.entry(f"jams/{name}.jams", [document.encode()])
        if options.audio:
            yield from _audio_entry(archive, track, name, options, problems)
    yield from _problems_entry(archive, problems)
    yield from archive.close()


def giantsteps_line(track: Track) -> str:
    """The one line of a GiantSteps `.key` file ('Db major'), or KeyWeb's no-key label ('no_key')."""
    consensus = track.consensus
    return consensus.mir_eval if consensus else track.consensus_label


def giantsteps_zip_export(options: ExportOptions, *, timestamp: float | None = None) -> Iterator[bytes]:
    """`keys/<name>.key` per labeled track (unlabeled tracks have no key file), `audio/<name>.<ext>` if
    asked: the layout of the GiantSteps key dataset."""
    archive, names, problems = ZipStream(timestamp=timestamp), _Names(), []
    for track in _iterate(options):
        name = names.for_track(track)
        if track.consensus_label:
            yield from archive.entry(f"keys/{name}.key", [(giantsteps_line(track) + "\n").encode()])
        if options.audio:
            yield from _audio_entry(archive, track, name, options, problems)
    yield from _problems_entry(archive, problems)
    yield from archive.close()


def export_stream(export_format: str, options: ExportOptions) -> Iterator[bytes]:
    if export_format not in FORMATS:
        raise ValueError(f"unknown export format {export_format!r}; choose one of {', '.join(FORMATS)}")
    if options.audio and export_format not in ("jams", "giantsteps"):
        raise ValueError("audio files can only be exported in a zip: use the jams or giantsteps format")
    return {
        "csv": csv_export,
        "jsonl": jsonl_export,
        "jams": jams_zip_export,
        "giantsteps": giantsteps_zip_export,
    }[export_format](options)


# --- tag write-back --------------------------------------------------------------------------------


def audio_key_tag_write(*, path: Path, audio_format: str, key: Key) -> None:
    """Write `key` into the tags of the file at `path` (a copy, never a library original): ID3 TKEY for
    MP3 (and the ID3 chunk of WAV/AIFF), the INITIALKEY Vorbis comment for FLAC and Ogg."""
    from mutagen.id3 import ID3, TKEY, ID3NoHeaderError

    value = key.id3
    if audio_format == "mp3":
        try:
            tags = ID3(path)
        except ID3NoHeaderError:
            tags = ID3()
        tags.setall("TKEY", [TKEY(encoding=3, text=[value])])
        tags.save(path)
    elif audio_format in ("wav", "aiff"):
        from mutagen.aiff import AIFF
        from mutagen.wave import WAVE

        audio = (WAVE if audio_format == "wav" else AIFF)(path)
        if audio.tags is None:
            audio.add_tags()
        audio.tags.setall("TKEY", [TKEY(encoding=3, text=[value])])
        audio.save()
    elif audio_format in ("flac", "ogg"):
        import mutagen

        audio = mutagen.File(path)
        if audio is None:
            raise ValueError("not a FLAC or Ogg file mutagen can read")
        if audio.tags is None:
            audio.add_tags()
        audio.tags["INITIALKEY"] = [value]
        audio.save()
    else:
        raise ValueError(f"no key tag is defined for {audio_format} files")
