"""`manage.py setup_keyweb`: idempotent setup after migrate — roles, the shipped model, the beat schedule."""

from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand
from django.db import transaction
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from annotations.models import ModelVersion
from annotations.selectors import backbone_name_configured
from annotations.services.model_versions import model_version_activate
from ml.backbones.base import ASSETS_DIR


def default_head_path(backbone: str) -> Path:
    """The head shipped for a backbone (ml/assets/default_head_<name>.pt, docs/default-head.md)."""
    return ASSETS_DIR / f"default_head_{backbone}.pt"


ROLE_PERMISSIONS = {
    "annotator": ["view_track", "add_annotation", "view_annotation"],
    "reviewer": ["view_track", "add_annotation", "view_annotation", "change_annotation"],
    "admin": [
        "view_track",
        "add_track",
        "change_track",
        "delete_track",
        "add_annotation",
        "view_annotation",
        "change_annotation",
        "delete_annotation",
        "view_modelversion",
        "add_modelversion",
        "change_modelversion",
        "view_prediction",
    ],
}

# name -> (task, seconds between runs)
PERIODIC_TASKS = {
    "keyweb: retrain when enough new labels": (
        "annotations.tasks.retrain_check_task",
        "RETRAIN_CHECK_SECONDS",
    ),
    "keyweb: return expired leases to the queue": ("annotations.tasks.leases_expire_task", 60),
    "keyweb: re-queue tracks stuck before analysis": ("annotations.tasks.analysis_sweep_task", 300),
    "keyweb: recover from dead workers and broker outages": ("annotations.tasks.recovery_sweep_task", 60),
    "keyweb: diversity re-rank of the queue head": ("annotations.tasks.queue_rerank_task", 120),
}


class Command(BaseCommand):
    help = "Create roles, register the shipped default model and write the Celery beat schedule."

    @transaction.atomic
    def handle(self, *args, **options):
        for role, codenames in ROLE_PERMISSIONS.items():
            group, _ = Group.objects.get_or_create(name=role)
            group.permissions.set(
                Permission.objects.filter(codename__in=codenames, content_type__app_label="annotations")
            )
        self.stdout.write(f"roles: {', '.join(ROLE_PERMISSIONS)}")

        backbone = backbone_name_configured()
        head = default_head_path(backbone)
        if not head.is_file():
            self.stderr.write(
                f"no head ships for the {backbone} backbone ({head}); predictions wait for training"
            )
        else:
            version, created = ModelVersion.objects.get_or_create(
                is_default=True,
                backbone=backbone,
                defaults={
                    "name": f"default ({backbone})",
                    "weights_path": str(head),
                    "status": ModelVersion.Status.READY,
                    "metrics": _default_head_metrics(head),
                },
            )
            if version.weights_path != str(head):  # the checkout moved
                version.weights_path = str(head)
                version.save(update_fields=["weights_path"])
            metrics = _default_head_metrics(head)
            if not created and metrics and version.metrics != metrics:
                # An upgrade shipped another head (its sidecar's metrics changed): it is made for today's
                # shipped backbone, so the fingerprint pinned at the old head's first use no longer holds.
                version.metrics = metrics
                version.backbone_fingerprint = ""
                version.save(update_fields=["metrics", "backbone_fingerprint"])
                self.stdout.write(f"default model: the shipped head changed; #{version.pk} follows it")
            active = ModelVersion.objects.filter(is_active=True).first()
            # The shipped head of today's backbone predicts until a trained version wins; a shipped head of
            # another backbone (an upgrade changed the default) gives way to it.
            if active is None or (active.is_default and active.backbone != backbone):
                model_version_activate(version=version)
            self.stdout.write(
                f"default model: {'registered' if created else 'present'} (#{version.pk}, {backbone})"
            )

        for name, (task, every) in PERIODIC_TASKS.items():
            seconds = settings.KEYWEB[every] if isinstance(every, str) else every
            schedule, _ = IntervalSchedule.objects.get_or_create(
                every=seconds, period=IntervalSchedule.SECONDS
            )
            PeriodicTask.objects.update_or_create(
                name=name,
                defaults={"task": task, "interval": schedule, "enabled": True, "kwargs": json.dumps({})},
            )
        self.stdout.write(f"beat schedule: {len(PERIODIC_TASKS)} periodic tasks")


def _default_head_metrics(head: Path) -> dict:
    """The held-out metrics recorded when the default head was trained (docs/default-head.md)."""
    metrics_file = head.with_suffix(".json")
    if metrics_file.is_file():
        return json.loads(metrics_file.read_text())
    return {}
