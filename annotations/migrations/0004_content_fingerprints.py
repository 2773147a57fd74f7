"""Embeddings and heads keyed by the backbone's content fingerprint; Prediction.uncertainty → priority.

Existing embedding rows have no fingerprint: they are dropped (their .npy files stay until cleaned) and
the worker embeds those tracks again on the next analysis sweep or prediction, which is what a changed
backbone must do anyway.
"""

from django.db import migrations, models


def drop_unfingerprinted(apps, schema_editor):
    apps.get_model("annotations", "Embedding").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("annotations", "0003_queue_scale_indexes")]

    operations = [
        migrations.RenameField("prediction", "uncertainty", "priority"),
        migrations.AlterField(
            "prediction",
            "priority",
            models.FloatField(help_text="The queue priority this prediction gave (strategy at the time)"),
        ),
        migrations.AddField(
            "modelversion", "backbone_fingerprint", models.CharField(blank=True, max_length=80)
        ),
        migrations.RemoveConstraint("embedding", "embedding_unique_per_backbone"),
        migrations.RunPython(drop_unfingerprinted, migrations.RunPython.noop),
        migrations.AddField(
            "embedding", "fingerprint", models.CharField(default="", max_length=80), preserve_default=False
        ),
        migrations.AddConstraint(
            "embedding",
            models.UniqueConstraint(
                fields=["track", "fingerprint", "semitones"], name="embedding_unique_per_fingerprint"
            ),
        ),
    ]
