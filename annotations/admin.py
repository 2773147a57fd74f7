"""Django admin for KeyWeb's models."""

from django.contrib import admin

from .models import Annotation, Embedding, ModelVersion, Prediction, Skip, Track
from .permissions import ADMIN, user_may


def _admin_role_only(request) -> bool:
    """Django's admin site opens for the admin role only: a stray is_staff flag on an annotator opens
    nothing (annotations/permissions.py)."""
    return request.user.is_active and request.user.is_staff and user_may(request.user, ADMIN)


admin.site.has_permission = _admin_role_only


@admin.register(Track)
class TrackAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "title",
        "artist",
        "duration_s",
        "status",
        "split",
        "consensus_label",
        "consensus_key",
        "needs_review",
        "priority",
    )
    list_filter = ("status", "split", "needs_review", "audio_format")
    search_fields = ("title", "artist", "original_filename", "content_hash")
    readonly_fields = ("content_hash", "size_bytes", "created_at", "analysis_attempts", "analysis_started_at")


@admin.register(Annotation)
class AnnotationAdmin(admin.ModelAdmin):
    list_display = ("id", "track", "annotator", "label", "key_index", "source", "created_at")
    list_filter = ("label", "source")
    raw_id_fields = ("track",)


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "name",
        "backbone",
        "status",
        "is_active",
        "is_default",
        "n_training_labels",
        "weighted",
        "created_at",
    )
    list_filter = ("status", "backbone", "is_active")
    readonly_fields = ("metrics", "hyperparameters", "created_at", "trained_at")

    @admin.display(description="weighted")
    def weighted(self, version: ModelVersion):
        return version.weighted_score


admin.site.register(Prediction)
admin.site.register(Embedding)
admin.site.register(Skip)
