"""`manage.py import_tracks PATH... [--labels CSV]`: import audio files and folders, reporting each bad file."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotations import dispatch
from annotations.services.discovery import audio_files_find
from annotations.services.tracks import ImportRejected, labels_csv_read, track_import


class Command(BaseCommand):
    help = "Import audio files (wav, flac, ogg, mp3, aiff) from files or folders (recursive)."

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", type=Path, help="audio files or folders")
        parser.add_argument(
            "--labels", type=Path, help="CSV with columns path,key: existing labels to import"
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, paths: list[Path], labels: Path | None, no_progress: bool, **options):
        try:
            known_labels = labels_csv_read(labels) if labels else {}
        except (ImportRejected, OSError) as error:
            raise CommandError(f"labels file: {error}") from error

        found = audio_files_find(paths)
        counts = {"imported": 0, "already present": 0, "failed": 0, "labels": 0}
        problems: list[tuple[Path, str]] = []
        created_ids: list[int] = []
        for item in tqdm(found, desc="importing", unit="file", disable=no_progress or not found):
            if item.problem:
                problems.append((item.path, item.problem))
                counts["failed"] += 1
                continue
            outcome = track_import(
                path=item.path, label=known_labels.get(item.path.resolve()), queue_analysis=False
            )
            if not outcome.ok:
                problems.append((item.path, outcome.error))
                counts["failed"] += 1
            else:
                counts["imported" if outcome.created else "already present"] += 1
                if outcome.created:
                    created_ids.append(outcome.track.pk)
                counts["labels"] += int(outcome.label_imported)

        dispatch.analysis_start(track_ids=created_ids)  # batched: many tracks per embedding pass
        waiting = sum(
            dispatch.is_pending(dispatch.ANALYSIS, batch) for batch in dispatch.batches(created_ids)
        )
        for path, problem in problems:
            self.stderr.write(f"  {path}: {problem}")
        summary = ", ".join(f"{n} {what}" for what, n in counts.items())
        self.stdout.write(f"{len(found)} files: {summary}")
        if waiting:
            self.stdout.write(
                f"The task queue (Redis) is unreachable: analysis of {len(created_ids)} new tracks will start "
                "by itself when it is back (a worker or beat publishes it); nothing needs to be imported again."
            )
        if not found:
            raise CommandError("no audio files found under the given paths")
        if problems:
            raise CommandError(f"{len(problems)} file(s) could not be imported (listed above)")
