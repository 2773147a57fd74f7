"""Import labels back from KeyWeb's own export formats (CSV, JSONL, JAMS, GiantSteps zip) and from a plain
`path,key` CSV, matching tracks by content hash or file name; with a dry run that only reports.

Hostile files are bounded: archive members are checked against KEYWEB IMPORT_MAX_MEMBER_BYTES and
IMPORT_MAX_TOTAL_BYTES from the zip's directory before anything is decompressed, and read in bounded
chunks (zipfile never yields more than a member's declared size); text lines are read at most
MAX_LINE_CHARS at a time. Every malformed file is a LabelFileError (a 400 naming the file) or a problem
on its record, never an unhandled exception."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
import zlib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from ml.cache import file_sha256
from ml.keys import Key, KeyParseError

from ..models import Annotation, Track
from . import error_text
from .labels import LabelValue, annotation_import

IMPORT_FORMATS = ("csv", "jsonl", "jams", "giantsteps")
MAX_PROBLEMS = 500
MAX_LINE_CHARS = 1 << 20  # one CSV row or JSONL line; longer is not a label file
_HASH = re.compile(r"[0-9a-f]{64}")
_HASH_SUFFIX = re.compile(r"^(?P<stem>.+)\.(?P<prefix>[0-9a-f]{8})$")


class LabelFileError(ValueError):
    """The label file as a whole cannot be read (wrong format, no header, not a zip)."""


@dataclass(frozen=True)
class LabelRecord:
    """One label as read from a file, before it is matched to a track."""

    where: str  # "line 3" or "keys/one.key"
    label_text: str = ""
    content_hash: str = ""
    file_name: str = ""  # a file name, a path, or a stem (GiantSteps)
    error: str = ""


@dataclass
class ImportReport:
    format: str
    dry_run: bool
    records: int = 0
    imported: int = 0
    unchanged: int = 0
    conflicts: int = 0
    unmatched: int = 0
    invalid: int = 0
    empty: int = 0
    problems: list[dict] = field(default_factory=list)

    def problem(self, where: str, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append({"where": where, "message": message})

    def summary(self) -> str:
        verb = "would import" if self.dry_run else "imported"
        return (
            f"{self.records} records: {verb} {self.imported}, {self.unchanged} unchanged, "
            f"{self.conflicts} conflicts, {self.unmatched} unmatched, {self.invalid} invalid, "
            f"{self.empty} without a label"
        )


# --- reading ---------------------------------------------------------------------------------------


def label_format_detect(name: str, head: bytes) -> str:
    """The format of a label file: a zip by its first bytes whatever its name, else by its name, else by
    its first bytes."""
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    suffix = Path(name).suffix.lower()
    if suffix in (".csv", ".txt"):
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".jams":
        return "jams"
    if suffix == ".zip":
        return "zip"
    if head.lstrip().startswith(b"{"):
        return "jsonl"
    return "csv"


def _text(stream: BinaryIO) -> io.TextIOWrapper:
    return io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")


def _lines(stream: BinaryIO) -> Iterator[str]:
    """The file's lines, each read at most MAX_LINE_CHARS at a time (a 200 MB file without a newline is
    refused, not held in memory)."""
    text = _text(stream)
    number = 0
    while line := text.readline(MAX_LINE_CHARS + 1):
        number += 1
        if len(line) > MAX_LINE_CHARS:
            raise LabelFileError(f"line {number} is longer than {MAX_LINE_CHARS} characters")
        yield line


def csv_records(stream: BinaryIO, *, base_dir: Path | None = None) -> Iterator[LabelRecord]:
    """A KeyWeb CSV export (content_hash, file_name, label, key) or a plain `path,key` CSV.

    With `base_dir` (the management command), a `path` naming a file that exists there is matched by its
    content hash; otherwise by its file name.
    """
    try:
        reader = csv.DictReader(_lines(stream))
        header = [name.strip().lower() for name in reader.fieldnames or []]
    except (UnicodeDecodeError, csv.Error) as error:
        raise LabelFileError(f"not a UTF-8 CSV file ({error})") from error
    if not ({"key", "label"} & set(header)) or not ({"content_hash", "file_name", "path"} & set(header)):
        raise LabelFileError(
            "the CSV header must name a key (column key or label) and a track "
            "(column content_hash, file_name or path), e.g. 'path,key'"
        )
    reader.fieldnames = header
    line = 1
    try:
        for line, row in enumerate(reader, start=2):
            row = {name: (value or "").strip() for name, value in row.items() if isinstance(name, str)}
            file_name = row.get("file_name") or row.get("path", "")
            content_hash = row.get("content_hash", "").lower()
            if not content_hash and base_dir is not None and row.get("path"):
                local = Path(row["path"])
                local = local if local.is_absolute() else base_dir / local
                if local.is_file():
                    content_hash = file_sha256(local)
            yield LabelRecord(
                where=f"line {line}",
                label_text=row.get("key") or row.get("label", ""),
                content_hash=content_hash,
                file_name=file_name,
            )
    except (UnicodeDecodeError, csv.Error) as error:
        raise LabelFileError(f"line {line + 1}: unreadable CSV ({error})") from error


def jsonl_records(stream: BinaryIO) -> Iterator[LabelRecord]:
    try:
        yield from _jsonl_records(stream)
    except UnicodeDecodeError as error:
        raise LabelFileError(f"not a UTF-8 text file ({error.reason} at byte {error.start})") from error


def _jsonl_records(stream: BinaryIO) -> Iterator[LabelRecord]:
    for line, text in enumerate(_lines(stream), start=1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except (ValueError, RecursionError) as error:  # RecursionError: nesting too deep to parse
            yield LabelRecord(where=f"line {line}", error=f"not a JSON object ({error})")
            continue
        if not isinstance(record, dict):
            yield LabelRecord(where=f"line {line}", error="each line must be a JSON object")
            continue
        label = record.get("key") or record.get("label") or ""
        content_hash, file_name = (
            record.get("content_hash") or "",
            record.get("file_name") or record.get("path") or "",
        )
        if not all(isinstance(value, str) for value in (label, content_hash, file_name)):
            yield LabelRecord(where=f"line {line}", error="key, content_hash and file_name must be strings")
            continue
        yield LabelRecord(
            where=f"line {line}", label_text=label, content_hash=content_hash.lower(), file_name=file_name
        )


def jams_record(data: bytes, where: str) -> LabelRecord:
    """The label of one JAMS file: its consensus `key_mode` annotation (KeyWeb's), else its first one."""
    try:
        record = _jams_record(json.loads(data.decode("utf-8-sig")), where)
    # not UTF-8, not JSON, nested too deep to parse, or JSON of another shape
    except (ValueError, RecursionError, AttributeError, TypeError, KeyError, IndexError) as error:
        return LabelRecord(where=where, error=f"not a JAMS file ({error_text(error)})")
    if not all(
        isinstance(value, str) for value in (record.label_text, record.content_hash, record.file_name)
    ):
        return LabelRecord(where=where, error="not a JAMS file (a label, hash or file name is not a string)")
    return record


def _jams_record(document: dict, where: str) -> LabelRecord:
    metadata = document.get("file_metadata") or {}
    identifiers = metadata.get("identifiers") or {}
    keyweb = (document.get("sandbox") or {}).get("keyweb") or {}
    key_modes = [a for a in document.get("annotations") or [] if a.get("namespace") == "key_mode"]
    content_hash = identifiers.get("content_hash") or keyweb.get("content_hash") or ""
    file_name = identifiers.get("file_name") or keyweb.get("file_name") or PurePosixPath(where).stem
    if not isinstance(content_hash, str) or not isinstance(file_name, str):
        raise TypeError("content_hash and file_name must be strings")
    content_hash = content_hash.lower()
    if not key_modes:
        return LabelRecord(where=where, content_hash=content_hash, file_name=file_name)
    chosen = next(
        (a for a in key_modes if (a.get("annotation_metadata") or {}).get("validation") == "consensus"),
        key_modes[0],
    )
    label = (chosen.get("sandbox") or {}).get("keyweb_label") or ""
    observations = chosen.get("data") or []
    value = observations[0].get("value") if observations and isinstance(observations[0], dict) else None
    if label == Annotation.Label.KEY or not label:
        if not isinstance(value, str):
            return LabelRecord(where=where, error="the key_mode annotation has no value")
        try:
            key = Key.from_jams(value)
        except KeyParseError as error:
            return LabelRecord(where=where, error=str(error))
        label = key.mir_eval if key is not None else Annotation.Label.NO_KEY
    return LabelRecord(where=where, label_text=label, content_hash=content_hash, file_name=file_name)


def _limits() -> tuple[int, int]:
    return settings.KEYWEB["IMPORT_MAX_MEMBER_BYTES"], settings.KEYWEB["IMPORT_MAX_TOTAL_BYTES"]


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):g} MB"


def _bounded_read(handle: BinaryIO, *, name: str, limit: int, setting: str) -> bytes:
    """At most `limit` bytes of `handle`, in chunks; more is a LabelFileError naming `name` and the limit."""
    chunks, size = [], 0
    while chunk := handle.read(min(1 << 16, limit + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise LabelFileError(f"{name} is larger than the {_mb(limit)} a label file may be ({setting})")
    return b"".join(chunks)


def zip_records(stream: BinaryIO) -> tuple[str, Iterator[LabelRecord]]:
    """A JAMS zip or a GiantSteps zip (either may hold audio too, which is ignored and never read).

    The .jams/.key members' uncompressed sizes, as the zip's directory declares them, are checked against
    the limits before any is read; zipfile never decompresses more than that declared size."""
    try:
        archive = zipfile.ZipFile(stream)
        members = [info for info in archive.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as error:
        raise LabelFileError(f"not a readable zip archive ({error_text(error)})") from error
    jams = [info for info in members if info.filename.lower().endswith(".jams")]
    keys = [info for info in members if info.filename.lower().endswith(".key")]
    if not jams and not keys:
        raise LabelFileError("the zip holds no .jams and no .key files")
    member_limit, total_limit = _limits()
    for info in jams + keys:
        if info.file_size > member_limit:
            raise LabelFileError(
                f"{info.filename} unpacks to {_mb(info.file_size)}, over the {_mb(member_limit)} a label "
                "file in an archive may be (KEYWEB_IMPORT_MAX_MEMBER_MB)"
            )
    total = sum(info.file_size for info in jams + keys)
    if total > total_limit:
        raise LabelFileError(
            f"the label files in the zip unpack to {_mb(total)}, over the {_mb(total_limit)} an import "
            "may be (KEYWEB_IMPORT_MAX_TOTAL_MB)"
        )

    def member(info: zipfile.ZipInfo) -> bytes | LabelRecord:
        try:
            with archive.open(info) as handle:
                return _bounded_read(
                    handle, name=info.filename, limit=member_limit, setting="KEYWEB_IMPORT_MAX_MEMBER_MB"
                )
        except (zipfile.BadZipFile, zlib.error, OSError, ValueError, NotImplementedError, EOFError) as error:
            return LabelRecord(
                where=info.filename, error=f"cannot be read from the zip ({error_text(error)})"
            )
        except RuntimeError as error:  # an encrypted member
            return LabelRecord(where=info.filename, error=f"cannot be read from the zip ({error})")

    def records() -> Iterator[LabelRecord]:
        with archive:
            for info in jams:
                data = member(info)
                yield data if isinstance(data, LabelRecord) else jams_record(data, info.filename)
            for info in keys:
                data = member(info)
                if isinstance(data, LabelRecord):
                    yield data
                    continue
                try:
                    text = data.decode("utf-8-sig").strip()
                except UnicodeDecodeError:
                    yield LabelRecord(where=info.filename, error="not a UTF-8 text file")
                    continue
                first_line = text.splitlines()[0].strip() if text else ""
                yield LabelRecord(
                    where=info.filename, label_text=first_line, file_name=PurePosixPath(info.filename).stem
                )

    return ("jams" if jams else "giantsteps"), records()


def label_records_read(
    *, stream: BinaryIO, name: str, label_format: str = "auto", base_dir: Path | None = None
) -> tuple[str, Iterator[LabelRecord]]:
    """(format, records) of a label file; raises LabelFileError when the file as a whole is unusable."""
    head = stream.read(8)
    stream.seek(0)
    detected = label_format_detect(name, head)
    if label_format in ("jams", "giantsteps") and detected != "jams":
        detected = "zip"
    elif label_format in ("csv", "jsonl"):
        detected = label_format
    if detected == "zip":
        found, records = zip_records(stream)
        if label_format in ("jams", "giantsteps") and found != label_format:
            raise LabelFileError(f"expected a {label_format} zip, but the archive holds {found} files")
        return found, records
    if detected == "jams":
        member_limit, _ = _limits()
        data = _bounded_read(stream, name=name, limit=member_limit, setting="KEYWEB_IMPORT_MAX_MEMBER_MB")
        return "jams", iter([jams_record(data, name)])
    if detected == "jsonl":
        return "jsonl", jsonl_records(stream)
    return "csv", csv_records(stream, base_dir=base_dir)


# --- matching and importing ------------------------------------------------------------------------


class _TrackIndex:
    """Finds the track of a record: by content hash, else by exact file name, else by file stem (with the
    `stem.<hash prefix>` names exports give to tracks that share a stem)."""

    def __init__(self) -> None:
        self._by_name: dict[str, list[int]] | None = None
        self._by_stem: dict[str, list[int]] = {}

    def _build(self) -> None:
        self._by_name = defaultdict(list)
        self._by_stem = defaultdict(list)
        for track_id, file_name in Track.objects.values_list("id", "original_filename").iterator(5000):
            self._by_name[file_name.lower()].append(track_id)
            base = PurePosixPath(file_name).name
            stem = base.rsplit(".", 1)[0] if "." in base.lstrip(".") else base
            self._by_stem[stem.lower()].append(track_id)

    def find(self, record: LabelRecord) -> tuple[int | None, str]:
        if record.content_hash:
            if not _HASH.fullmatch(record.content_hash):
                return None, f"{record.content_hash!r} is not a SHA-256 content hash"
            track_id = (
                Track.objects.filter(content_hash=record.content_hash).values_list("id", flat=True).first()
            )
            if track_id is not None or not record.file_name:
                return track_id, "no track has this content hash"
        if not record.file_name:
            return None, "the record names no track (no content_hash, file_name or path)"
        if self._by_name is None:
            self._build()
        base = PurePosixPath(record.file_name.replace("\\", "/")).name.lower()
        candidates = self._by_name.get(base) or self._by_stem.get(base) or []
        if not candidates and (match := _HASH_SUFFIX.match(base)):
            candidates = list(
                Track.objects.filter(
                    id__in=self._by_stem.get(match["stem"], []), content_hash__startswith=match["prefix"]
                ).values_list("id", flat=True)
            )
        if len(candidates) > 1:
            return None, f"{len(candidates)} tracks are named {base!r}; add a content_hash column to choose"
        if not candidates:
            return None, f"no track is named {base!r}"
        return candidates[0], ""


@transaction.atomic  # a file refused halfway through (LabelFileError) imports nothing
def labels_import(
    *,
    records: Iterable[LabelRecord],
    label_format: str,
    user: AbstractBaseUser | None = None,
    dry_run: bool = False,
) -> ImportReport:
    """Attach each record's label to its track as an imported annotation (which becomes the consensus).

    A track that already carries the same label is left alone; one with a different imported label keeps
    it and is reported as a conflict. A dry run reports the same numbers and writes nothing.
    """
    report = ImportReport(format=label_format, dry_run=dry_run)
    index = _TrackIndex()
    planned: dict[int, tuple[str, int | None]] = {}  # labels this run added (or would add), by track id
    for record in records:
        report.records += 1
        if record.error:
            report.invalid += 1
            report.problem(record.where, record.error)
            continue
        if not record.label_text.strip():
            report.empty += 1
            continue
        try:
            value = LabelValue.parse(record.label_text)
        except KeyParseError as error:
            report.invalid += 1
            report.problem(record.where, str(error))
            continue
        track_id, why = index.find(record)
        if track_id is None:
            report.unmatched += 1
            report.problem(record.where, why)
            continue
        wanted = (value.label, value.key.index if value.key else None)
        track = Track.objects.get(pk=track_id)
        existing = planned.get(track_id)
        if existing is None:
            imported = (
                Annotation.objects.filter(track=track, source=Annotation.Source.IMPORT)
                .values_list("label", "key_index")
                .first()
            )
            existing = imported
            if existing is None and track.consensus_label:
                if (track.consensus_label, track.consensus_key) == wanted:
                    existing = wanted
        if existing == wanted:
            report.unchanged += 1
            continue
        if existing is not None:
            report.conflicts += 1
            shown = Key.from_index(existing[1]).mir_eval if existing[1] is not None else existing[0]
            report.problem(record.where, f"track {track_id} already has the imported label {shown}; kept it")
            continue
        planned[track_id] = wanted
        report.imported += 1
        if not dry_run:
            annotation_import(track=track, label=value, user=user)
    return report
