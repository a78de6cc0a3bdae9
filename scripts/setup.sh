#!/usr/bin/env bash
# One-time set-up on a Debian machine (as root): system packages, a running
# Docker engine, and a virtualenv (.venv) with meshexp-build (and its dev tools
# with --with dev).
# Idempotent: a second run only checks.
#
#   scripts/setup.sh                 what building and running an image needs
#                                    (make demo, make demo-trio): the engine,
#                                    debootstrap, Go, the virtualenv
#   scripts/setup.sh --with apiserver  also Debian's etcd, unpacked into the
#                                    cache (the local API server, the lab, the
#                                    kube tests)
#   scripts/setup.sh --with publish  also what multi-platform publishing needs:
#                                    qemu and binfmt (arm64 steps), the aarch64
#                                    cross compiler (SPIRE with cgo), Debian's
#                                    docker-registry (the offline helper registry)
#   scripts/setup.sh --with browser  also Debian's Chromium, a colour emoji font
#                                    and a text font without emoji glyphs (the e2e
#                                    reads the Faces GUI in it)
#   scripts/setup.sh --with dev      also the test and lint tools in .venv (pytest,
#                                    ruff, mypy, shellcheck, hadolint, matplotlib...)
set -euo pipefail
cd "$(dirname "$0")/.."

die() { printf 'setup: %s\n' "$*" >&2; exit 1; }

with_apiserver=false
with_publish=false
with_dev=false
with_browser=false
while [ "$#" -gt 0 ]; do
  case "$1:${2:-}" in
  --with:apiserver) with_apiserver=true ;;
  --with:publish) with_publish=true ;;
  --with:dev) with_dev=true ;;
  --with:browser) with_browser=true ;;
  *) die "usage: scripts/setup.sh [--with apiserver] [--with publish] [--with browser] [--with dev] (got: $*)" ;;
  esac
  shift 2
done

# quietly WHAT COMMAND...: run a long, quiet command, saying every 20 s that
# it is still running (a cold machine is never silent for 30 s), and showing
# its output only when it fails.
quietly() {
  local what=$1 log start pid
  shift
  log=$(mktemp)
  start=$SECONDS
  "$@" >"$log" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    if (((SECONDS - start) % 20 == 0)) && kill -0 "$pid" 2>/dev/null; then
      echo "setup: still $what ($((SECONDS - start))s)"
    fi
  done
  if ! wait "$pid"; then
    tail -n 30 "$log" >&2
    rm -f "$log"
    die "$what failed (its last lines are above)"
  fi
  rm -f "$log"
}

need_packages=()
command -v debootstrap >/dev/null || need_packages+=(debootstrap)
command -v dockerd >/dev/null || need_packages+=(docker.io)
[ -x /usr/bin/docker ] || need_packages+=(docker.io)
command -v file >/dev/null || need_packages+=(file)
# Multi-platform images: qemu runs arm64 build steps; the cross compiler builds
# SPIRE (cgo) for arm64; the helper registry serves the SBOM scanner offline.
if "$with_publish"; then
  command -v docker-registry >/dev/null || need_packages+=(docker-registry)
  if [ "$(uname -m)" = x86_64 ]; then
    [ -x /usr/bin/qemu-aarch64-static ] || need_packages+=(qemu-user-static)
    command -v update-binfmts >/dev/null || need_packages+=(binfmt-support)
    command -v aarch64-linux-gnu-gcc >/dev/null || need_packages+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
  fi
fi
if "$with_browser"; then
  command -v chromium >/dev/null || need_packages+=(chromium)
  [ -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || need_packages+=(fonts-noto-color-emoji)
  [ -e /usr/share/fonts/truetype/liberation2/LiberationSans-Regular.ttf ] || need_packages+=(fonts-liberation2)
fi
python3 -m venv --help >/dev/null 2>&1 || need_packages+=(python3-venv)
if [ "${#need_packages[@]}" -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing ${need_packages[*]}: run as root, or install them yourself"
  echo "setup: installing ${need_packages[*]} (Debian packages, about a minute)"
  export DEBIAN_FRONTEND=noninteractive
  quietly "updating the package lists" apt-get update -qq
  quietly "installing ${need_packages[*]}" \
    apt-get install -y -qq --no-install-recommends "${need_packages[@]}"
fi

scripts/ensure-docker.sh
# arm64 emulation, for multi-platform images; as another user, only a warning.
if "$with_publish"; then
  if [ "$(id -u)" = 0 ]; then
    scripts/ensure-emulation.sh
  else
    scripts/ensure-emulation.sh || echo "setup: no arm64 emulation: multi-platform publish will need it (run scripts/ensure-emulation.sh as root)"
  fi
fi

# etcd for the local Kubernetes API server (tests marked `kube`, `meshexp-build
# apiserver`): Debian's etcd-server, unpacked into meshexp-build's cache
# without installing it, so that no etcd service starts on this machine.
etcd_root=${XDG_CACHE_HOME:-$HOME/.cache}/meshexp-build/etcd
if "$with_apiserver" && ! command -v etcd >/dev/null && [ ! -x "$etcd_root/usr/bin/etcd" ]; then
  echo "setup: unpacking Debian's etcd-server into $etcd_root"
  etcd_tmp=$(mktemp -d)
  (cd "$etcd_tmp" && quietly "downloading etcd-server" \
    bash -c 'apt-get download etcd-server || { apt-get update -qq && apt-get download etcd-server; }')
  mkdir -p "$etcd_root"
  dpkg -x "$etcd_tmp"/etcd-server_*.deb "$etcd_root"
  rm -rf "$etcd_tmp"
fi

# Go builds SPIRE, the Faces-compatible workloads and the stand-in proxy.
command -v go >/dev/null || die "Go 1.25 or later is needed (go.dev/dl, or your distribution's golang package)"
go_minor=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
[ "$go_minor" -ge 25 ] || die "Go $(go env GOVERSION) is too old: 1.25 or later is needed"

# The marker says what is installed; the dev set includes the plain one.
package=meshexp-build marker=.venv/.installed
if "$with_dev"; then package='meshexp-build[dev]' marker=.venv/.installed-dev; fi
if [ ! -x .venv/bin/meshexp-build ] || [ ! -f "$marker" ] || [ pyproject.toml -nt "$marker" ]; then
  echo "setup: installing $package into .venv (from PyPI, under a minute)"
  [ -x .venv/bin/python ] || python3 -m venv .venv
  quietly "upgrading pip" .venv/bin/pip install -q --upgrade pip
  quietly "installing $package into .venv" .venv/bin/pip install -q -e ".${package#meshexp-build}"
  touch "$marker" .venv/.installed
fi
echo "setup: ready ($(.venv/bin/meshexp-build --version))"
