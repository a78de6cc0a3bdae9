#!/usr/bin/env bash
# The richer demo: the Faces trio off-cluster. smiley, color and face are
# built with one command, started with `meshexp-build run` on one Docker
# network, and a request to face is answered with a smiley and a color that
# crossed three proxies (their connection counters show each hop).
# Uses the PROXY STAND-IN unless PROXY_FILE names a real linkerd2-proxy.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
network=meshexp-trio

PROXY_FILE=$(scripts/proxy-file.sh)
[ -f out/certs/issuer.key ] || meshexp-build certs --output out/certs
profile=(--offline --proxy-file "$PROXY_FILE")

meshexp-build image --workload smiley --workload color --workload face "${profile[@]}"
for name in smiley color; do
  meshexp-build run --workload "$name" --network "$network" --certs out/certs "${profile[@]}"
done
meshexp-build run --workload face --network "$network" --certs out/certs "${profile[@]}" \
  --env SMILEY_SERVICE=meshexp-smiley:8000 --env COLOR_SERVICE=meshexp-color:8000

ip() { docker inspect -f "{{(index .NetworkSettings.Networks \"$network\").IPAddress}}" "meshexp-$1"; }
python3 - "$(ip face)" "$(ip smiley)" "$(ip color)" <<'PY'
import json, sys, urllib.request
face, smiley, color = sys.argv[1:]
def opened(ip, direction):
    text = urllib.request.urlopen(f"http://{ip}:4191/metrics", timeout=10).read().decode()
    return sum(int(l.rsplit(" ", 1)[1]) for l in text.splitlines()
               if l.startswith("tcp_open_total{") and f'direction="{direction}"' in l)
answer = json.load(urllib.request.urlopen(f"http://{face}:8000/", timeout=20))
print(f"face answered: smiley {answer['smiley']} color {answer['color']}")
print(f"face   outbound connections through its proxy: {opened(face, 'outbound')}")
print(f"smiley inbound connections through its proxy:  {opened(smiley, 'inbound')}")
print(f"color  inbound connections through its proxy:  {opened(color, 'inbound')}")
PY
echo "demo-trio: manifests in out/manifests; stop with: meshexp-build stop --workload face (and smiley, color)"
