# KeyWeb web image: Django under gunicorn, static files by whitenoise. No torch in this image:
# request paths never import it, and the worker images do the model work.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN apt-get update && apt-get install -y --no-install-recommends libsndfile1 curl \
    && rm -rf /var/lib/apt/lists/* && useradd --create-home --uid 1000 keyweb
WORKDIR /app
COPY pyproject.toml README.md ./
COPY keyweb ./keyweb
COPY annotations ./annotations
COPY ml ./ml
COPY templates ./templates
COPY manage.py ./
RUN pip install .
# collectstatic needs settings that import cleanly; these values exist only during the build.
RUN KEYWEB_ENV=development KEYWEB_VAR_DIR=/tmp/build python manage.py collectstatic --noinput \
    && mkdir -p /data/media && chown -R keyweb /data /app
USER keyweb
ENV KEYWEB_ENV=production KEYWEB_STATIC_ROOT=/app/var/static KEYWEB_MEDIA_ROOT=/data/media
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --retries=3 CMD curl -fsS http://127.0.0.1:8000/healthz || exit 1
CMD ["gunicorn", "keyweb.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--timeout", "120"]
