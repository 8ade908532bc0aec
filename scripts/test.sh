#!/usr/bin/env bash
# Installs everything the tests need, then runs every test (lint included).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-env.sh test
command -v git >/dev/null || { apt-get update -qq && apt-get install -y -qq git; }
# PostgreSQL's server (the MLflow backend tests make throwaway clusters with it)
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 \
  || { apt-get update -qq && apt-get install -y -qq postgresql; }
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
