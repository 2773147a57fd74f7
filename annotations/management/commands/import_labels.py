"""`manage.py import_labels FILE [--dry-run]`: import labels from a KeyWeb export (csv, jsonl, JAMS zip,
GiantSteps zip or folder of .key files) or a plain `path,key` CSV; tracks are matched by content hash
(paths that exist here are hashed) or by file name."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotations.services.label_imports import (
    IMPORT_FORMATS,
    LabelFileError,
    label_records_read,
    labels_import,
)


def _zip_folder(folder: Path) -> io.BytesIO:
    """A folder of .jams / .key files read like the zip an export makes (only those files are packed)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.suffix.lower() in (".jams", ".key"):
                archive.write(path, path.relative_to(folder).as_posix())
    buffer.seek(0)
    return buffer


class Command(BaseCommand):
    help = "Import key labels from a label file or folder; --dry-run reports without changing anything."

    def add_arguments(self, parser):
        parser.add_argument(
            "path", type=Path, help="label file (csv, jsonl, jams, zip) or folder of .key files"
        )
        parser.add_argument("--format", choices=("auto", *IMPORT_FORMATS), default="auto")
        parser.add_argument("--dry-run", action="store_true", help="report what would change; change nothing")

    def handle(self, *args, path: Path, format: str, dry_run: bool, **options):
        if not path.exists():
            raise CommandError(f"{path}: no such file or folder")
        try:
            if path.is_dir():
                stream, name = _zip_folder(path), f"{path.name}.zip"
            else:
                stream, name = open(path, "rb"), path.name
            with stream:
                found_format, records = label_records_read(
                    stream=stream,
                    name=name,
                    label_format=format,
                    base_dir=path.parent if path.is_file() else path,
                )
                report = labels_import(records=records, label_format=found_format, dry_run=dry_run)
        except (LabelFileError, OSError) as error:
            raise CommandError(f"{path}: {error}") from error
        for problem in report.problems:
            self.stderr.write(f"  {problem['where']}: {problem['message']}")
        self.stdout.write(
            f"{found_format}: {report.summary()}" + (" (dry run: nothing changed)" if dry_run else "")
        )
        if report.records and report.invalid + report.unmatched == report.records:
            raise CommandError("no record could be imported (problems listed above)")
