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
# installed once per set of extras, again only when pyproject.toml changes (the install is
# editable: code changes need none), so a second `make demo` starts in seconds
stamp=".venv/.installed-${extra:-base}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] \
   || [ ! -f sharinghub_lab/labextension/package.json ]; then
  # pip prints many harmless "Location ... is ignored" lines on some mirrors: keep logs readable
  .venv/bin/python -m pip install --quiet --upgrade pip 2>&1 | grep -v "is ignored" || true
  [ -f sharinghub_lab/labextension/package.json ] \
    || echo "building the JupyterLab extension (Node 20 + npm; a few minutes the first time)"
  .venv/bin/python -m pip install --quiet -e "$spec" 2>&1 | grep -v "is ignored" || true
fi
# an editable install does not copy the frontend: JupyterLab finds it through a link to
# its build (rebuild with `jlpm build` in labextension/, then reload the page)
ext=.venv/share/jupyter/labextensions/sharinghub-lab
if [ -f sharinghub_lab/labextension/package.json ]; then
  mkdir -p "$(dirname "$ext")"
  [ -L "$ext" ] || rm -rf "$ext"
  ln -sfn "$PWD/sharinghub_lab/labextension" "$ext"
else
  echo "the JupyterLab extension did not build (see labextension/build.log)" >&2; exit 1
fi
.venv/bin/python -c "import sharinghub_server, sharinghub_lab" \
  || { rm -f "$stamp"; echo "installation failed" >&2; exit 1; }
touch "$stamp"
