"""Top-level URLs. Nothing imported from here may pull in torch (tests/annotations/test_imports.py)."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from annotations.views import healthz

urlpatterns = [
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", healthz, name="healthz"),
    path("", include("annotations.urls")),
]
