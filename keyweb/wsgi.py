"""WSGI entry point (gunicorn keyweb.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "keyweb.settings")
application = get_wsgi_application()
