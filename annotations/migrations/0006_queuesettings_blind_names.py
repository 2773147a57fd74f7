"""Blind labeling: an admin setting that hides titles, artists and file names from annotators."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("annotations", "0005_recovery")]

    operations = [
        migrations.AddField(
            model_name="queuesettings",
            name="blind_names",
            field=models.BooleanField(
                default=False, help_text="Hide titles, artists and file names from annotators"
            ),
        ),
    ]
