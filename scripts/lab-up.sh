#!/usr/bin/env bash
# Start the mesh lab (a real Linkerd control plane, no Kubernetes nodes) in
# out/lab, for `make demo-trio` and `meshexp-build run --lab out/lab`.
# Linkerd's programs come from LINKERD_PROGRAMS (a folder with controller,
# linkerd-policy-controller, proxy-identity and linkerd), else from the test
# equipment beside this checkout (../shared/test-equipment); the proxy as
# scripts/proxy-file.sh picks it (the lab needs a real one).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
programs=${LINKERD_PROGRAMS:-../shared/test-equipment/linkerd-control-plane}
if [ ! -f "$programs/controller" ]; then
  echo "lab: no Linkerd programs in $programs; set LINKERD_PROGRAMS=/folder/with/controller,linkerd-policy-controller,proxy-identity,linkerd" >&2
  exit 1
fi
proxy=$(scripts/proxy-file.sh)
crds=()
[ -f ../shared/reference/linkerd-crds/linkerd-crds.yaml ] &&
  crds=(--crds ../shared/reference/linkerd-crds/linkerd-crds.yaml)
meshexp-build apiserver --prepare >/dev/null
meshexp-build lab up --dir out/lab --programs "$programs" --proxy-file "$proxy" "${crds[@]}" --progress plain
