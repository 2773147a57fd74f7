# KeyWeb worker image: Celery with ml/ (torch, nnAudio). TORCH_INDEX picks the build: the CUDA wheel of
# torch 2.13.0 for the `gpu` queue, the CPU wheel for `default` and beat.
FROM python:3.11-slim-bookworm
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN apt-get update && apt-get install -y --no-install-recommends libsndfile1 \
    && rm -rf /var/lib/apt/lists/* && useradd --create-home --uid 1000 keyweb
WORKDIR /app
RUN pip install "torch==2.13.0" --index-url "${TORCH_INDEX}"
COPY pyproject.toml README.md ./
COPY keyweb ./keyweb
COPY annotations ./annotations
COPY ml ./ml
COPY templates ./templates
COPY manage.py ./
RUN pip install ".[ml]" && mkdir -p /data/media /data/models && chown -R keyweb /data /app
USER keyweb
ENV KEYWEB_ENV=production KEYWEB_MEDIA_ROOT=/data/media KEYWEB_MODEL_DIR=/data/models
CMD ["celery", "-A", "keyweb", "worker", "-Q", "default", "--loglevel", "INFO"]
