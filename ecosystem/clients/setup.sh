#!/usr/bin/env bash
# Installs what the client examples and their tests need, idempotently, on a machine
# with Node 18+ (npm) and Python 3.9+:
#   node/node_modules     from package-lock.json (npm ci: exactly the locked versions)
#   ../pm2/node_modules   PM2, likewise
#   python/.venv          a virtualenv with requirements.txt
# Each step is skipped when what it would install is already there and unchanged, so
# CI can call this before every `cargo test` at little cost.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

need() { command -v "$1" >/dev/null 2>&1 || { echo "setup.sh: $1 is required ($2)" >&2; exit 1; }; }
need node "Node.js 18 or later"
need npm "npm, which comes with Node.js"
need python3 "Python 3.9 or later"

# --- Node: reinstall only when the lock file changed since the last install. ---------
npm_ci() {
  local dir="$1" stamp="$1/node_modules/.pgwa-lock.sha256" sum
  sum="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$sum" ]]; then
    echo "npm: $dir up to date"
  else
    echo "npm: npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$sum" > "$stamp"
  fi
}
node_dir="$here/node"
npm_ci "$node_dir"
# PM2, for the test that runs ecosystem/pm2/ecosystem.config.js under the real thing.
npm_ci "$here/../pm2"

# --- Python: a venv of its own, refreshed when requirements.txt changed. -------------
py_dir="$here/python"
venv="$py_dir/.venv"
py_stamp="$venv/.pgwa-requirements.sha256"
py_sum="$(sha256sum "$py_dir/requirements.txt" | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -f "$py_stamp" && "$(cat "$py_stamp")" == "$py_sum" ]]; then
  echo "python: dependencies up to date"
else
  if [[ ! -x "$venv/bin/python" ]]; then
    echo "python: creating $venv"
    python3 -m venv "$venv"
  fi
  echo "python: pip install -r requirements.txt"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$py_dir/requirements.txt"
  echo "$py_sum" > "$py_stamp"
fi

# A last check that both stacks import what the examples use.
(cd "$node_dir" && node -e "require('pg'); require('qrcode-terminal')")
# (not `pm2 --version`: any pm2 command starts its daemon)
(cd "$here/../pm2" && node -e "require.resolve('pm2')")
"$venv/bin/python" -c "import psycopg, qrcode, yaml, jsonschema, kubernetes_validate"
echo "clients ready"
