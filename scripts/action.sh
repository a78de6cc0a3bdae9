#!/usr/bin/env bash
# The composite action's one step (action.yml): install meshexp-build from the
# action's own checkout, then build (and push) the workloads its inputs name.
# Inputs arrive as MESHEXP_* environment variables, never pasted into a script.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

die() { echo "meshexp-build action: $*" >&2; exit 1; }

args=(--progress plain -o json --linkerd-version "$MESHEXP_LINKERD_VERSION"
  --platform "$MESHEXP_PLATFORMS" --image-name "$MESHEXP_IMAGE_NAME")
[ -z "$MESHEXP_TAG" ] || args+=(--tag "$MESHEXP_TAG")
[ -z "$MESHEXP_CATALOG" ] || args+=(--catalog "$MESHEXP_CATALOG")
while read -r mirror; do
  [ -z "$mirror" ] || args+=(--mirror "$mirror")
done <<<"$MESHEXP_MIRRORS"
read -r -a workloads <<<"$(printf '%s' "$MESHEXP_WORKLOADS" | tr '\n' ' ')"
[ "${#workloads[@]}" -gt 0 ] || die "inputs.workloads names no workload"
if [ "${workloads[*]}" = all ]; then
  args+=(--all)
else
  for workload in "${workloads[@]}"; do args+=(--workload "$workload"); done
fi
case "$MESHEXP_PUSH" in
  true)
    [ -n "$MESHEXP_REGISTRY" ] || die "inputs.registry is needed to push (e.g. ghcr.io/my-org)"
    verb=publish
    # Repository paths are lowercase (a GitHub owner may not be).
    args+=(--registry "${MESHEXP_REGISTRY,,}")
    ;;
  false)
    [[ "$MESHEXP_PLATFORMS" != *,* ]] || die "without push, build one platform (inputs.platforms)"
    verb=image
    ;;
  *) die "inputs.push is true or false, not '$MESHEXP_PUSH'" ;;
esac

# buildkitd (started by meshexp-build for several platforms) runs its steps with runc.
sudo apt-get update -qq
sudo apt-get install -y -qq --no-install-recommends runc >/dev/null
python -m venv "$RUNNER_TEMP/meshexp-venv"
"$RUNNER_TEMP/meshexp-venv/bin/pip" install -q "$here"
# buildkitd and the engine's socket need root; the registry login stays the runner's.
# The output file is the runner's own (the redirect is not under sudo, on purpose).
# shellcheck disable=SC2024
sudo --preserve-env=DOCKER_CONFIG,PATH,GOPATH,GOCACHE,GOMODCACHE,HOME \
  "$RUNNER_TEMP/meshexp-venv/bin/meshexp-build" "$verb" "${args[@]}" >"$RUNNER_TEMP/meshexp-images.json"
{
  echo "images<<MESHEXP_JSON"
  cat "$RUNNER_TEMP/meshexp-images.json"
  echo "MESHEXP_JSON"
} >>"$GITHUB_OUTPUT"
