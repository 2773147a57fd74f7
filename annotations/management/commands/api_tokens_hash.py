"""`manage.py api_tokens_hash`: replace every plain API token left from before tokens were hashed by its
digest, at once (each is also converted on its first use). Clients keep their keys."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from annotations.services.accounts import tokens_plain_convert_all


class Command(BaseCommand):
    help = "Store every remaining plain API token as a hash; clients keep using the same keys."

    def handle(self, *args, **options):
        converted = tokens_plain_convert_all()
        self.stdout.write(
            f"{converted} plain token{'s' if converted != 1 else ''} converted; none left in plain text"
        )
