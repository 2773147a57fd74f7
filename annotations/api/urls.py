"""API URLs, mounted at /api/ (keyweb/urls.py); version 1 lives under /api/v1/. Names are namespaced `api:`."""

from django.urls import path

from .views import annotators, auth, datasets, labels, model_versions, predictions, settings, tracks

app_name = "api"

urlpatterns = [
    path("v1/auth/token", auth.TokenApi.as_view(), name="token"),
    path("v1/auth/me", auth.MeApi.as_view(), name="me"),
    path("v1/users", auth.UserListApi.as_view(), name="user-list"),
    path("v1/users/<int:pk>", auth.UserDetailApi.as_view(), name="user-detail"),
    path("v1/users/<int:pk>/token", auth.UserTokenApi.as_view(), name="user-token"),
    path("v1/tracks", tracks.TrackListApi.as_view(), name="track-list"),
    path("v1/tracks/<int:pk>", tracks.TrackDetailApi.as_view(), name="track-detail"),
    path("v1/tracks/<int:pk>/key", tracks.TrackKeyApi.as_view(), name="track-key"),
    path("v1/tracks/<int:pk>/review", labels.ReviewDecideApi.as_view(), name="track-review"),
    path("v1/annotations", labels.AnnotationListApi.as_view(), name="annotation-list"),
    path("v1/annotations/<int:pk>", labels.AnnotationDetailApi.as_view(), name="annotation-detail"),
    path("v1/queue/next", labels.QueueNextApi.as_view(), name="queue-next"),
    path("v1/queue/progress", labels.QueueProgressApi.as_view(), name="queue-progress"),
    path("v1/queue/submit", labels.QueueSubmitApi.as_view(), name="queue-submit"),
    path("v1/queue/skip", labels.QueueSkipApi.as_view(), name="queue-skip"),
    path("v1/queue/skipped", labels.QueueSkippedApi.as_view(), name="queue-skipped"),
    path(
        "v1/queue/skipped/<int:track_id>",
        labels.QueueSkippedPutBackApi.as_view(),
        name="queue-skipped-put-back",
    ),
    path("v1/queue/undo", labels.QueueUndoApi.as_view(), name="queue-undo"),
    path("v1/settings/labeling", settings.LabelingSettingsApi.as_view(), name="labeling-settings"),
    path("v1/annotators", annotators.AnnotatorAgreementApi.as_view(), name="annotator-list"),
    path("v1/reviews", labels.ReviewListApi.as_view(), name="review-list"),
    path("v1/models", model_versions.ModelVersionListApi.as_view(), name="model-list"),
    path("v1/models/training", model_versions.TrainingApi.as_view(), name="model-training"),
    path("v1/models/pretraining", model_versions.PretrainingApi.as_view(), name="model-pretraining"),
    path("v1/models/<int:pk>", model_versions.ModelVersionDetailApi.as_view(), name="model-detail"),
    path(
        "v1/models/<int:pk>/activate", model_versions.ModelVersionActivateApi.as_view(), name="model-activate"
    ),
    path("v1/predictions", predictions.PredictionJobCreateApi.as_view(), name="prediction-list"),
    path(
        "v1/predictions/<uuid:job_id>", predictions.PredictionJobDetailApi.as_view(), name="prediction-detail"
    ),
    path("v1/exports/<str:export_format>", datasets.ExportApi.as_view(), name="export"),
    path("v1/imports", datasets.ImportApi.as_view(), name="import"),
]
