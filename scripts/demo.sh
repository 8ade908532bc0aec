#!/usr/bin/env bash
# Installs sharinghub-lab and starts the demo: JupyterLab on the embedded default.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-env.sh demo
exec .venv/bin/sharinghub-lab demo "$@"
