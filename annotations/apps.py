"""App config for the annotations app: tracks, annotations, predictions and model versions."""

from django.apps import AppConfig


class AnnotationsConfig(AppConfig):
    name = "annotations"
    default_auto_field = "django.db.models.BigAutoField"
