"""Page URLs of the annotations app."""

from django.urls import path

from . import media, views

app_name = "annotations"

urlpatterns = [
    path("", views.home, name="home"),
    path("tracks/", views.track_list, name="track_list"),
    path("upload/", views.upload, name="upload"),
    path("tracks/<int:pk>/audio", media.track_audio, name="track_audio"),
]
