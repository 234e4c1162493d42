#!/usr/bin/env bash
# Installs what the tests need besides Rust and Postgres, idempotently, so that
# `bash tests/setup.sh && cargo test --workspace` is the whole set-up on a fresh machine:
#   Debian packages   podman, buildah, debootstrap (tests/container_image.rs builds the
#                     image), iproute2 and util-linux (it starts the image in namespaces),
#                     chromium and chromium-driver (the connect page in a real browser)
#   client examples   npm and PyPI packages (ecosystem/clients/setup.sh)
#   tests/s3/.venv    moto, a local S3-compatible server (PyPI)
# Packages already installed are left alone; apt-get runs only for missing ones, and then
# needs root (otherwise the script names the packages to install and stops).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# command -> Debian package that provides it
declare -A tools=(
  [podman]=podman [buildah]=buildah [debootstrap]=debootstrap
  [ip]=iproute2 [unshare]=util-linux [nsenter]=util-linux [curl]=curl
  [chromium]=chromium [chromedriver]=chromium-driver
)
missing=()
for tool in "${!tools[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${tools[$tool]}")
done
if ((${#missing[@]})); then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  if [[ $(id -u) != 0 ]]; then
    echo "tests/setup.sh: install these Debian packages first (as root): apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "apt: installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null \
    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; }
else
  echo "apt: test tools present"
fi

bash "$here/../ecosystem/clients/setup.sh"

# --- A local S3 server (moto) for the object-store tests, refreshed when its
# requirements changed. ------------------------------------------------------------------
s3_venv="$here/s3/.venv"
s3_stamp="$s3_venv/.pgwa-requirements.sha256"
s3_sum="$(sha256sum "$here/s3/requirements.txt" | cut -d' ' -f1)"
if [[ -x "$s3_venv/bin/moto_server" && -f "$s3_stamp" && "$(cat "$s3_stamp")" == "$s3_sum" ]]; then
  echo "s3: moto up to date"
else
  echo "s3: installing moto into tests/s3/.venv"
  python3 -m venv "$s3_venv"
  "$s3_venv/bin/pip" install -q --disable-pip-version-check -r "$here/s3/requirements.txt"
  echo "$s3_sum" > "$s3_stamp"
fi
