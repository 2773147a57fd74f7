"""Celery-side code: backbones, analysis, prediction, training, re-ranking. The only part of annotations that
imports torch (through ml/); only annotations.tasks imports it."""
