"""Page URLs of the annotations app, and the JSON endpoints the label page and dashboard call."""

from django.urls import path

from . import media, views

app_name = "annotations"

urlpatterns = [
    path("", views.home, name="home"),
    path("tracks/", views.track_list, name="track_list"),
    path("upload/", views.upload, name="upload"),
    path("tracks/<int:pk>/audio", media.track_audio, name="track_audio"),
    path("tracks/<int:pk>/visuals.json", views.track_visuals, name="track_visuals"),
    # Labeling: the page, then JSON (session + CSRF) for next / submit / skip / undo.
    path("label/", views.label_page, name="label"),
    path("label/next.json", views.label_next, name="label_next"),
    path("label/submit.json", views.label_submit, name="label_submit"),
    path("label/skip.json", views.label_skip, name="label_skip"),
    path("label/undo.json", views.label_undo, name="label_undo"),
    # Review of disputed tracks: reviewers and admins.
    path("review/", views.review_list, name="review_list"),
    path("review/<int:pk>/", views.review_track, name="review_track"),
    # The admin dashboard: staff.
    path("dashboard/", views.dashboard, name="dashboard"),
    path("dashboard/training/", views.dashboard_training_request, name="dashboard_training_request"),
    path("dashboard/training/status.json", views.dashboard_training_status, name="dashboard_training_status"),
    path(
        "dashboard/versions/<int:pk>/activate",
        views.dashboard_version_activate,
        name="dashboard_version_activate",
    ),
    path("dashboard/strategy", views.dashboard_strategy, name="dashboard_strategy"),
    path("dashboard/export/labels.csv", views.export_labels_csv, name="export_labels_csv"),
]
