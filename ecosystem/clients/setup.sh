#!/usr/bin/env bash
# Installs what the client examples need, idempotently, on a machine with Node 18+ (npm)
# and Python 3.9+:
#   node/node_modules     from package-lock.json (npm ci: exactly the locked versions)
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
node_dir="$here/node"
node_stamp="$node_dir/node_modules/.pgwa-lock.sha256"
node_sum="$(sha256sum "$node_dir/package-lock.json" | cut -d' ' -f1)"
if [[ -f "$node_stamp" && "$(cat "$node_stamp")" == "$node_sum" ]]; then
  echo "node: dependencies up to date"
else
  echo "node: npm ci in $node_dir"
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$node_sum" > "$node_stamp"
fi

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
"$venv/bin/python" -c "import psycopg, qrcode, yaml"
echo "clients ready"
