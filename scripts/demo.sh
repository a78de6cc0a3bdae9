#!/usr/bin/env bash
# The main job: build the smiley image and start it the way the original
# walk-through does.
#
# Where upstream's registries (or the mirrors meshexp.yaml names) answer, it
# takes the default, online path: upstream's proxy, SPIRE and Faces images, the
# proxy's version read from its image. Where they do not (a quick probe,
# `meshexp-build doctor --registries`), the offline profile: a Debian base from
# debootstrap, SPIRE and the workload from the Go module proxy, and the proxy
# as a file: PROXY_FILE if set, else the real linkerd2-proxy kept as test
# equipment beside the checkout, else the PROXY STAND-IN (scripts/proxy-file.sh
# says which on every run). DEMO_PROFILE=online|offline skips the probe.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

network=meshexp-demo
name=meshexp-demo-smiley
timeout=${DEMO_TIMEOUT:-120}

profile=${DEMO_PROFILE:-}
if [ -z "$profile" ]; then
  if probe=$(meshexp-build doctor --registries 2>&1); then
    profile=online
    echo "demo: online: the registries answer, so upstream's images are used"
  else
    profile=offline
    echo "demo: offline: no registry answers here ($(printf '%s\n' "$probe" | grep -m1 -o '[^ ]* does not answer' || echo 'see meshexp-build doctor --registries'))"
  fi
fi
build=(meshexp-build image --workload smiley -o json)
if [ "$profile" = offline ]; then
  PROXY_FILE=$(scripts/proxy-file.sh)
  build+=(--offline --proxy-file "$PROXY_FILE")
fi
[ -f out/certs/issuer.key ] || meshexp-build certs --output out/certs

if [ "$profile" = offline ] && { ! docker image inspect meshexp/debian-base:bookworm >/dev/null 2>&1 ||
  [ -z "$(docker images -q meshexp/components)" ]; }; then
  echo "demo: first run on this machine: about 10 minutes on 2 cores. It builds a Debian"
  echo "demo: base image with debootstrap (about a minute) and SPIRE from source through the"
  echo "demo: Go module proxy (most of the time, its module downloads included); both are"
  echo "demo: cached, and later runs take under a minute."
fi

# Build progress goes to stderr; the JSON result (the image reference) to stdout.
image=$("${build[@]}" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["reference"])')

docker network inspect "$network" >/dev/null 2>&1 || docker network create "$network" >/dev/null
docker rm -f "$name" >/dev/null 2>&1 || true
echo "demo: docker run $image (as in the walk-through: NET_ADMIN, certs at /opt/spire/certs)"
docker run -d --name "$name" --network "$network" --cap-add=NET_ADMIN \
  -v "$PWD/out/certs:/opt/spire/certs:ro" \
  -e WORKLOAD_NAME=smiley -e WORKLOAD_NAMESPACE=faces -e 'NODE_NAME=$(hostname)' \
  -e FACES_SERVICE=smiley -e DELAY_BUCKETS=0 "$image" >/dev/null

deadline=$((SECONDS + timeout))
until docker logs "$name" 2>&1 | grep -q 'bootstrap: workload started'; do
  if [ "$(docker inspect -f '{{.State.Running}}' "$name")" != true ] || [ "$SECONDS" -ge "$deadline" ]; then
    docker logs "$name" >&2
    echo "demo: the container did not come up" >&2
    exit 1
  fi
  sleep 0.5
done
ip=$(docker inspect -f "{{(index .NetworkSettings.Networks \"$network\").IPAddress}}" "$name")
echo "demo: container log:"
docker logs "$name" 2>&1 | grep -E '^(bootstrap|PROXY|standin-proxy)|linkerd2_proxy: release|Certified identity' |
  sed 's/^/  | /'
python3 - "$ip" <<'PY'
import sys, urllib.request
ip = sys.argv[1]
ready = urllib.request.urlopen(f"http://{ip}:4191/ready", timeout=10)
print(f"demo: proxy /ready on {ip}:4191 -> {ready.status}")
body = urllib.request.urlopen(f"http://{ip}:8000/", timeout=10).read().decode()
print(f"demo: smiley on {ip}:8000 answered through the proxy: {body.strip()}")
# Client connections the proxy accepted (not its admin port's, nor its own hop).
from builder.check.live import tcp_open_total
print(f"demo: the proxy's tcp_open_total, inbound connections from clients: {tcp_open_total(ip, 'inbound')}")
PY
echo "demo: running as $name on network $network; remove with: docker rm -f $name"
