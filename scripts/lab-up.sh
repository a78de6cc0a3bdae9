#!/usr/bin/env bash
# Start the mesh lab (a real Linkerd control plane, no Kubernetes nodes) in
# out/lab, for `make demo-trio` and `meshexp-build run --lab out/lab`.
# Linkerd's programs: LINKERD_PROGRAMS (a folder with controller,
# linkerd-policy-controller, proxy-identity and linkerd), else the test
# equipment beside this checkout (../shared/test-equipment), else what
# `lab up` does by default: copied out of Linkerd's own images for the linkerd
# CLI on PATH (needs cr.l5d.io). With a folder of programs, the proxy is the
# one scripts/proxy-file.sh picks (the lab needs a real one).
set -euo pipefail
cd "$(dirname "$0")/.."

die() { printf 'lab: %s\n' "$*" >&2; exit 1; }

programs=${LINKERD_PROGRAMS:-}
equipment=../shared/test-equipment/linkerd-control-plane
if [ -z "$programs" ] && [ -f "$equipment/controller" ]; then
  programs=$equipment
fi
if [ -n "$programs" ] && [ ! -f "$programs/controller" ]; then
  die "no Linkerd programs in $programs (LINKERD_PROGRAMS): it needs controller, linkerd-policy-controller, proxy-identity and linkerd"
fi
if [ -z "$programs" ] && ! command -v linkerd >/dev/null; then
  die "the lab takes Linkerd's programs from Linkerd's images for the linkerd CLI's release: install the linkerd CLI (https://linkerd.io/2/getting-started/), or set LINKERD_PROGRAMS=/folder/with/controller,linkerd-policy-controller,proxy-identity,linkerd"
fi

scripts/setup.sh --with apiserver
export PATH="$PWD/.venv/bin:$PATH"
from=()
if [ -n "$programs" ]; then
  from=(--programs "$programs" --proxy-file "$(scripts/proxy-file.sh)")
else
  echo "lab: Linkerd's programs from Linkerd's images for $(linkerd version --client --short)"
fi
crds=()
[ -f ../shared/reference/linkerd-crds/linkerd-crds.yaml ] &&
  crds=(--crds ../shared/reference/linkerd-crds/linkerd-crds.yaml)
meshexp-build apiserver --prepare >/dev/null
meshexp-build lab up --dir out/lab "${from[@]}" "${crds[@]}" --progress plain
