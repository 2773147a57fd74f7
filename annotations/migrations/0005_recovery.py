"""Recovery from faults: one training at a time in the database, heartbeats and interruption counts for
stale claims, and the transactional outbox that keeps work asked for during a broker outage."""

from django.db import migrations, models
from django.db.models import Q


def one_in_progress(apps, schema_editor):
    """Before the constraint: if several versions claim to be in progress, keep the newest."""
    ModelVersion = apps.get_model("annotations", "ModelVersion")
    running = list(ModelVersion.objects.filter(in_progress=True).order_by("-id").values_list("id", flat=True))
    if len(running) > 1:
        ModelVersion.objects.filter(id__in=running[1:]).update(
            in_progress=None, status="failed", error="superseded: only one training may run at a time"
        )


class Migration(migrations.Migration):
    dependencies = [("annotations", "0004_content_fingerprints")]

    operations = [
        migrations.AddField("track", "analysis_interruptions", models.PositiveSmallIntegerField(default=0)),
        migrations.AddField("modelversion", "heartbeat_at", models.DateTimeField(blank=True, null=True)),
        migrations.AddField(
            "modelversion",
            "attempts",
            models.PositiveSmallIntegerField(default=0, help_text="Training runs started"),
        ),
        migrations.AddField("predictionjob", "started_at", models.DateTimeField(blank=True, null=True)),
        migrations.AddField("predictionjob", "attempts", models.PositiveSmallIntegerField(default=0)),
        migrations.RunPython(one_in_progress, migrations.RunPython.noop),
        migrations.AddConstraint(
            "modelversion",
            models.UniqueConstraint(
                condition=Q(in_progress=True), fields=["in_progress"], name="one_training_at_a_time"
            ),
        ),
        migrations.CreateModel(
            name="OutboxMessage",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("task_name", models.CharField(max_length=200)),
                ("args", models.JSONField(default=list)),
                ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                ("attempts", models.PositiveIntegerField(default=0)),
                ("last_error", models.TextField(blank=True)),
            ],
            options={"ordering": ["id"]},
        ),
    ]
