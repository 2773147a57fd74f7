"""`manage.py export_dataset FORMAT OUTPUT`: write the labeled dataset as csv, jsonl, a JAMS zip or a
GiantSteps zip (the same streams as GET /api/v1/exports/FORMAT), to a temporary name then renamed."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime
from django.utils.timezone import is_naive, make_aware
from tqdm import tqdm

from annotations.models import Track
from annotations.services.exports import FORMATS, ExportOptions, export_stream, export_tracks


def _moment(text: str | None):
    if text is None:
        return None
    moment = parse_datetime(text) or parse_datetime(f"{text}T00:00:00")
    if moment is None:
        raise CommandError(f"{text!r} is not a date or date-time (use e.g. 2025-01-31 or 2025-01-31T12:00)")
    return make_aware(moment) if is_naive(moment) else moment


class Command(BaseCommand):
    help = "Export labeled tracks: csv, jsonl, jams (zip) or giantsteps (zip)."

    def add_arguments(self, parser):
        parser.add_argument("format", choices=FORMATS)
        parser.add_argument("output", type=Path, help="file to write")
        parser.add_argument("--all", action="store_true", help="include tracks without a consensus label")
        parser.add_argument("--split", choices=Track.Split.values)
        parser.add_argument("--since", help="labeled at or after this date (ISO 8601)")
        parser.add_argument("--until", help="labeled before this date (ISO 8601)")
        parser.add_argument("--annotations", action="store_true", help="add every annotation and annotator")
        parser.add_argument("--audio", action="store_true", help="add the audio files (zip formats)")
        parser.add_argument("--write-tags", action="store_true", help="write the key into the audio copies")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options):
        export_options = ExportOptions(
            consensus_only=not options["all"],
            split=options["split"],
            since=_moment(options["since"]),
            until=_moment(options["until"]),
            annotations=options["annotations"],
            audio=options["audio"],
            write_tags=options["write_tags"],
        )
        if export_options.write_tags and not export_options.audio:
            raise CommandError("--write-tags needs --audio: the tags go into the exported audio copies")
        try:
            stream = export_stream(options["format"], export_options)
        except ValueError as error:
            raise CommandError(str(error)) from error
        total = export_tracks(export_options).count()
        output: Path = options["output"]
        output.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            dir=output.parent, prefix=f".{output.name}.", delete=False
        ) as handle:
            temporary = Path(handle.name)
            try:
                with tqdm(total=total, unit="track", disable=options["no_progress"], desc="exporting") as bar:
                    written = 0
                    for chunk in stream:
                        handle.write(chunk)
                        written += len(chunk)
                        bar.set_postfix_str(f"{written / 1e6:.1f} MB")
            except BaseException:
                handle.close()
                temporary.unlink(missing_ok=True)
                raise
        os.replace(temporary, output)
        self.stdout.write(f"{total} tracks exported to {output} ({output.stat().st_size / 1e6:.1f} MB)")
