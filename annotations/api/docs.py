"""The API's documentation pages, served entirely from this server (drf-spectacular-sidecar's assets), so
they work offline and under the Content-Security-Policy: Swagger UI with its start-up script as a separate
file (no inline script), Redoc without the Google Fonts links drf-spectacular's template adds."""

from __future__ import annotations

import re

from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerSplitView

_FONT_LINKS = re.compile(rb"[ \t]*<link[^>]*fonts\.(?:googleapis|gstatic)\.com[^>]*>\s*")


def _strip_font_links(response):
    response.content = _FONT_LINKS.sub(b"", response.content)
    return response


class OfflineRedocView(SpectacularRedocView):
    """Redoc with the system's fonts instead of Google's."""

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if hasattr(response, "add_post_render_callback"):
            response.add_post_render_callback(_strip_font_links)
        return response


class OfflineSwaggerView(SpectacularSwaggerSplitView):
    """Swagger UI whose start-up script is fetched from `?script=` rather than written inline."""
