#!/usr/bin/env bash
# Runs the store, retrieval, API, sentiment-head and worker tests against real servers: PostgreSQL (Debian packages) and a
# chromadb server on loopback, then the fleet soak (API replicas and workers). Installs PostgreSQL when missing. Used by
# .ci/run after `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
as_postgres() { if [ "$(id -u)" = 0 ]; then su postgres -c "$1"; else sudo -u postgres sh -c "$1"; fi; }

if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq postgresql
fi
.venv/bin/pip install --disable-pip-version-check -q -e '.[dev,postgres,ray]'

VERSION=$(ls /usr/lib/postgresql | sort -V | tail -1)
$SUDO pg_ctlcluster "$VERSION" main start 2>/dev/null || true
for _ in $(seq 60); do as_postgres "pg_isready -q" && break; sleep 1; done
as_postgres "psql -q -c \"ALTER USER postgres PASSWORD 'copilot-ci'\""

CHROMA_DIR=$(mktemp -d)
.venv/bin/chroma run --path "$CHROMA_DIR" --host 127.0.0.1 --port 8765 >"$CHROMA_DIR.log" 2>&1 &
CHROMA_PID=$!
trap 'kill $CHROMA_PID 2>/dev/null || true; rm -rf "$CHROMA_DIR"' EXIT
for _ in $(seq 60); do
  curl -fs http://127.0.0.1:8765/api/v2/heartbeat >/dev/null 2>&1 && break
  curl -fs http://127.0.0.1:8765/api/v1/heartbeat >/dev/null 2>&1 && break
  sleep 1
done

export COPILOT_TEST_DATABASE_URL="postgresql+psycopg://postgres:copilot-ci@127.0.0.1:5432/postgres"
export COPILOT_TEST_CHROMA_URL="http://127.0.0.1:8765"
export LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 ANONYMIZED_TELEMETRY=False
.venv/bin/python -m pytest -q -m "not slow" tests/test_store.py tests/test_retrieval.py tests/test_api.py tests/test_sentiment_head.py \
  tests/test_security.py tests/test_model_runtime.py tests/test_worker.py tests/test_kpis.py tests/test_insights.py
.venv/bin/python -m pytest -q -m slow tests/test_worker.py  # two `copilot worker` processes, one killed mid-job
.venv/bin/python -m pytest -q tests/test_ray.py  # a local Ray cluster: reindex and NPS themes as in one process

# The shared queue under load: a fresh database, two API replicas on loopback ports and two `copilot worker`
# processes (one SIGKILLed mid-job), 5 minutes of clients; fails on any error or inconsistency.
.venv/bin/python bench/soak.py --replicas 2 --workers 2 --seconds 300
