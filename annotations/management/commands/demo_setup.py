"""`manage.py demo_setup`: demo users and synthetic tracks for the embedded mode (never in production)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

DEMO_USERS = {
    # username: (password, role, staff)
    "demo-admin": ("keyweb-admin", "admin", True),
    "demo-annotator": ("keyweb-annotator", "annotator", False),
}


class Command(BaseCommand):
    help = "Create the demo admin and annotator and import synthetic demo tracks (development mode only)."

    def add_arguments(self, parser):
        parser.add_argument("--tracks", type=int, default=60, help="number of synthetic tracks (default 60)")
        parser.add_argument("--seed", type=int, default=2026)
        parser.add_argument("--min-duration", type=float, default=15.0)
        parser.add_argument("--max-duration", type=float, default=90.0)

    def handle(self, *args, tracks: int, seed: int, min_duration: float, max_duration: float, **options):
        if settings.PRODUCTION:
            raise CommandError(
                "demo users exist only in the embedded development mode (KEYWEB_ENV=development)"
            )
        for username, (password, role, staff) in DEMO_USERS.items():
            user, created = User.objects.get_or_create(username=username)
            if created:
                user.set_password(password)
                user.is_staff = staff
                user.is_superuser = staff
                user.save()
            user.groups.add(Group.objects.get(name=role))
        self.stdout.write(self.style.SUCCESS("Demo logins (development only):"))
        for username, (password, role, _) in DEMO_USERS.items():
            self.stdout.write(f"  {role:10s} user: {username:16s} password: {password}")

        from ml.synth import generate_dataset

        folder = Path(settings.VAR_DIR) / "demo-audio"
        labels = folder / "labels.csv"
        if not labels.is_file():
            self.stdout.write(f"generating {tracks} synthetic tracks in {folder} ...")
            generate_dataset(
                folder,
                n_tracks=tracks,
                seed=seed,
                duration_range=(min_duration, max_duration),
                formats=("wav", "flac", "ogg", "mp3"),
                progress=True,
            )
        # The true keys stay in labels.csv for simulations; the demo asks people to label by ear.
        call_command("import_tracks", str(folder), stdout=self.stdout, stderr=self.stderr)
