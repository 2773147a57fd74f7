"""Page URLs of the annotations app (labeling JSON is the API's: /api/v1/queue/*, annotations/api/urls.py)."""

from django.urls import path

from .pages import dashboard, label, library, media, review

app_name = "annotations"

urlpatterns = [
    path("", library.home, name="home"),
    path("tracks/", library.track_list, name="track_list"),
    path("upload/", library.upload, name="upload"),
    path("tracks/<int:pk>/audio", media.track_audio, name="track_audio"),
    path("tracks/<int:pk>/visuals.json", label.track_visuals, name="track_visuals"),
    # Labeling: the page; its script uses /api/v1/queue/next|submit|skip|undo|progress.
    path("label/", label.label_page, name="label"),
    # Review of disputed tracks: reviewers and admins; decisions go to /api/v1/tracks/<id>/review.
    path("review/", review.review_list, name="review_list"),
    path("review/<int:pk>/", review.review_track, name="review_track"),
    # The admin dashboard: staff.
    path("dashboard/", dashboard.dashboard, name="dashboard"),
    path("dashboard/training/", dashboard.dashboard_training_request, name="dashboard_training_request"),
    path(
        "dashboard/training/status.json",
        dashboard.dashboard_training_status,
        name="dashboard_training_status",
    ),
    path(
        "dashboard/versions/<int:pk>/activate",
        dashboard.dashboard_version_activate,
        name="dashboard_version_activate",
    ),
    path("dashboard/strategy", dashboard.dashboard_strategy, name="dashboard_strategy"),
    path(
        "dashboard/pretraining/",
        dashboard.dashboard_pretraining_request,
        name="dashboard_pretraining_request",
    ),
    path("dashboard/export/labels.csv", dashboard.export_labels_csv, name="export_labels_csv"),
]
