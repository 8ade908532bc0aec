#!/usr/bin/env bash
# Installs everything the tests need, then runs every test (lint included).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-env.sh test
command -v git >/dev/null || { apt-get update -qq && apt-get install -y -qq git; }
# PostgreSQL's server (the MLflow backend tests make throwaway clusters with it)
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 \
  || { apt-get update -qq && apt-get install -y -qq postgresql; }
# Debian's chromium for the browser tests (Playwright drives it; never a downloaded browser)
[ -x /usr/bin/chromium ] || { apt-get update -qq && apt-get install -y -qq chromium; }
.venv/bin/ruff check .
# the frontend's unit tests (jest); node_modules is there after a frontend build, else
# installed here from npm's own registry setting
[ -x labextension/node_modules/.bin/jest ] || (cd labextension \
  && YARN_NPM_REGISTRY_SERVER="${YARN_NPM_REGISTRY_SERVER:-$(npm config get registry)}" \
     ../.venv/bin/jlpm install)
(cd labextension && ../.venv/bin/jlpm test)
# with arguments: pytest as asked (say, one file, or -n 0 ...)
[ $# -eq 0 ] || exec .venv/bin/python -m pytest "$@"
# every test: one worker per core (pytest-xdist, at most 4), a file's tests on one worker (its
# module fixtures made once): 11 minutes on 2 cores against 24 one at a time.
# tests/test_bad_requests.py runs apart, after: schemathesis gives the tests of all its routes
# one node id, of which pytest-xdist runs one test only
status=0
.venv/bin/python -m pytest -n auto --maxprocesses 4 --dist loadfile \
  --ignore tests/test_bad_requests.py || status=$?
.venv/bin/python -m pytest tests/test_bad_requests.py || status=$?
exit $status
