"""Top-level URLs. Nothing reachable from here may load torch, tasks or worker (tests/annotations/test_architecture.py)."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView

from annotations.api.docs import OfflineRedocView, OfflineSwaggerView
from annotations.api.errors import api_not_found
from annotations.api.throttles import login_throttled
from annotations.pages.library import healthz

urlpatterns = [
    path("admin/", admin.site.urls),
    path(
        "login/",
        login_throttled(auth_views.LoginView.as_view(redirect_authenticated_user=True)),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", healthz, name="healthz"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", OfflineSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", OfflineRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    path("api/", include("annotations.api.urls")),
    re_path(r"^api/", csrf_exempt(api_not_found)),  # JSON 404 under /api/ whatever DEBUG says
    path("", include("annotations.urls")),
]

# JSON for /api/ paths, Django's pages elsewhere.
handler400 = "annotations.api.errors.json_or_html_400"
handler403 = "annotations.api.errors.json_or_html_403"
handler404 = "annotations.api.errors.json_or_html_404"
handler500 = "annotations.api.errors.json_or_html_500"
