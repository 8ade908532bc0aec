#!/usr/bin/env bash
# Creates .venv (once) and installs the project with what the given extras need.
# Usage: scripts/setup-env.sh [extra]   (e.g. "test")
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
extra=${1:-}
spec="."
[ -n "$extra" ] && spec=".[${extra}]"
# pip prints many harmless "Location ... is ignored" lines on some mirrors: keep logs readable
.venv/bin/python -m pip install --quiet --upgrade pip 2>&1 | grep -v "is ignored" || true
.venv/bin/python -m pip install --quiet -e "$spec" 2>&1 | grep -v "is ignored" || true
.venv/bin/python -c "import sharinghub_server, sharinghub_lab" \
  || { echo "installation failed" >&2; exit 1; }
