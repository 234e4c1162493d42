#!/usr/bin/env bash
# Builds ecosystem/docker/Dockerfile as it is, with podman and buildah, on a machine that
# has neither a Docker engine nor an image registry: the two images its FROM lines name
# are made here first, from Debian's packages (debootstrap) and this machine's Rust
# toolchain, and stored under those names, so the build finds them locally.
#
#   bash ecosystem/docker/build-local.sh [TAG]          (default localhost/pgwa:local)
#
# Needs root (debootstrap, podman's storage), podman, buildah and debootstrap (Debian:
# apt-get install podman buildah debootstrap), network access to Debian's mirror and
# crates.io, and a rustc of the version the Dockerfile's rust:<version> names. The base
# images are made once and kept in podman's storage; the build's cargo registry and
# target/ stay in buildah's cache mounts, so a second build compiles only what changed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dockerfile="$root/ecosystem/docker/Dockerfile"
tag="${1:-localhost/pgwa:local}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

fail() { echo "build-local.sh: $*" >&2; exit 1; }
for tool in podman buildah debootstrap rustc; do
  command -v "$tool" >/dev/null 2>&1 \
    || fail "$tool is required (Debian: apt-get install podman buildah debootstrap; rustc from rustup)"
done
[[ $(id -u) == 0 ]] || fail "run as root: debootstrap and podman's chroot isolation need it"

# The names the Dockerfile builds from, read from it so the two cannot drift apart.
build_from="$(sed -n 's/^FROM \([^ ]*\) AS build$/\1/p' "$dockerfile")"
run_from="$(sed -n 's/^FROM \([^ ]*\)$/\1/p' "$dockerfile")"
[[ $build_from =~ ^rust:([0-9]+\.[0-9]+)-([a-z]+)$ ]] \
  || fail "the build stage's FROM is '$build_from', not rust:<version>-<debian suite>"
rust_version="${BASH_REMATCH[1]}" suite="${BASH_REMATCH[2]}"
[[ $run_from == "debian:$suite-slim" ]] \
  || fail "the run stage's FROM is '$run_from', not debian:$suite-slim like the build stage"
[[ "$(rustc --version)" == "rustc $rust_version."* ]] \
  || fail "the Dockerfile builds with Rust $rust_version but this machine has $(rustc --version)"

# OCI isolation needs cgroups that sandboxes and some CI machines lack ("cgroups in
# hybrid mode not supported"); chroot isolation needs none. Host network: the build
# fetches crates and Debian packages.
isolation=(--isolation=chroot --network=host)

# debian:<suite>-slim: a minimal Debian (apt, dpkg, coreutils) from the mirror.
if podman image exists "localhost/$run_from"; then
  echo "base: localhost/$run_from already made"
else
  rootfs="$(mktemp -d /var/tmp/pgwa-rootfs.XXXXXX)"
  trap 'rm -rf "$rootfs" "$rootfs.log"' EXIT
  echo "base: debootstrap --variant=minbase $suite from $mirror (a few minutes)"
  debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 \
    || { tail -20 "$rootfs.log" >&2; fail "debootstrap failed (the lines above say why)"; }
  # What makes Debian's -slim images slim: no documentation, manual pages or
  # translations, now or in later installs, and no apt caches left in layers.
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
CFG
  cat >"$rootfs/etc/apt/apt.conf.d/slim" <<'CFG'
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb || true"; };
CFG
  find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  rm -rf "$rootfs"/usr/share/{man,info,locale,lintian}/* \
    "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  ctr="$(buildah from scratch)"
  buildah copy --quiet "$ctr" "$rootfs" / >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --cmd /bin/bash "$ctr"
  buildah commit --quiet --rm "$ctr" "localhost/$run_from" >/dev/null
  rm -rf "$rootfs" "$rootfs.log"
  trap - EXIT
  echo "base: made localhost/$run_from"
fi

# rust:<version>-<suite>: that Debian with a C compiler (ring builds C) and this machine's
# toolchain, with cargo's home where the official image keeps it (/usr/local/cargo, whose
# registry the Dockerfile's cache mount names).
if podman image exists "localhost/$build_from"; then
  echo "base: localhost/$build_from already made"
else
  echo "base: making localhost/$build_from from localhost/$run_from and $(rustc --version)"
  ctr="$(buildah from --pull=never "localhost/$run_from")"
  buildah run "${isolation[@]}" "$ctr" -- sh -c \
    'apt-get update -qq && apt-get install -y -qq --no-install-recommends gcc libc6-dev ca-certificates >/dev/null && rm -rf /var/lib/apt/lists/*'
  # This machine's own certificate authorities (where a TLS-inspecting proxy's CA is
  # installed), so cargo inside the build reaches crates.io as it does here.
  if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    buildah copy --quiet "$ctr" /usr/local/share/ca-certificates /usr/local/share/ca-certificates >/dev/null
    buildah run "${isolation[@]}" "$ctr" -- update-ca-certificates >/dev/null
  fi
  sysroot="$(rustc --print sysroot)"
  for part in bin lib libexec etc; do
    [[ -e $sysroot/$part ]] && buildah copy --quiet "$ctr" "$sysroot/$part" "/usr/local/rust/$part" >/dev/null
  done
  buildah config --env CARGO_HOME=/usr/local/cargo \
    --env PATH=/usr/local/cargo/bin:/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    "$ctr"
  buildah commit --quiet --rm "$ctr" "localhost/$build_from" >/dev/null
  echo "base: made localhost/$build_from"
fi

# A rebuild moves the tag; the image it named is removed rather than left dangling.
previous="$(podman image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)"
# Docker's image format, as `docker build` makes: the OCI format has no HEALTHCHECK.
echo "image: building $tag from $dockerfile (a release build: about 20 minutes on 2 cores the first time)"
# --layers=false: no intermediate image per step (the build stage alone is over 1 GB);
# the cache mounts already make a rebuild incremental.
podman build "${isolation[@]}" --pull=never --format docker --layers=false \
  -f "$dockerfile" -t "$tag" "$root"
if [[ -n $previous && $previous != "$(podman image inspect --format '{{.Id}}' "$tag")" ]]; then
  podman rmi "$previous" >/dev/null 2>&1 || true
fi
echo "image: built $tag ($(podman image inspect --format '{{.Size}}' "$tag") bytes)"
