#!/usr/bin/env bash
# The Faces trio off-cluster: smiley, color and face are built with one
# command and started with `meshexp-build run` on one Docker network, each
# behind its own proxy (the real linkerd2-proxy where one is at hand, see
# scripts/proxy-file.sh).
#
# What it shows without a control plane, as linkerd2-proxy behaves: smiley
# and color answer through their inbound proxies, and face's calls to them
# are captured by face's proxy, which holds them until a Linkerd policy
# controller answers for their targets. face's full answer across three
# proxies needs that control plane.
#
# With the mesh lab running (`make lab`: a real Linkerd control plane in
# out/lab), the trio goes into it instead, and face's whole answer comes back
# across three proxies over mTLS.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
network=meshexp-trio

if meshexp-build lab status --dir out/lab >/dev/null 2>&1; then
  PROXY_FILE=$(scripts/proxy-file.sh)
  profile=(--offline --proxy-file "$PROXY_FILE")
  meshexp-build image --workload smiley --workload color --workload face "${profile[@]}"
  for name in smiley color; do
    meshexp-build run --workload "$name" --lab out/lab "${profile[@]}"
  done
  meshexp-build run --workload face --lab out/lab "${profile[@]}" \
    --env SMILEY_SERVICE=smiley.faces.svc.cluster.local:8000 \
    --env COLOR_SERVICE=color.faces.svc.cluster.local:8000
  face=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' meshexp-face)
  python3 - "$face" <<'PY'
import json, re, sys, urllib.request
face = sys.argv[1]
body = json.load(urllib.request.urlopen(f"http://{face}:8000/center/", timeout=20))
print(f"face answered through three proxies: smiley {body['smiley']} color {body['color']} errors {body.get('errors')}")
metrics = urllib.request.urlopen(f"http://{face}:4191/metrics", timeout=10).read().decode()
for line in metrics.splitlines():
    if line.startswith("tcp_open_total{") and 'peer="dst"' in line and "dst_external_workload" in line:
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
        print(f"face -> {labels['dst_external_workload']}: tls={labels['tls']} server_id={labels.get('server_id')}")
PY
  echo "demo-trio: in the lab; stop with: make lab-down"
  exit 0
fi

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
python3 - "$(ip smiley)" "$(ip color)" <<'PY'
import sys, urllib.request
from builder.check import grpcwire
from builder.check.live import tcp_open_total

def smiley(ip):  # HTTP/1 JSON
    return urllib.request.urlopen(f"http://{ip}:8000/", timeout=20).read().decode().strip()

def color(ip):  # gRPC, as upstream's color speaks
    answer = grpcwire.call(ip, 8000, "/ColorService/Center", b"", timeout=20)
    return f"{answer.summary()}, {[grpcwire.decode_message(m) for m in answer.messages]}"

for ask, ip in zip((smiley, color), sys.argv[1:]):
    before = tcp_open_total(ip, "inbound")
    body = ask(ip)
    after = tcp_open_total(ip, "inbound")
    print(f"{ask.__name__:<6} answered through its proxy: {body} (inbound connections {before} -> {after})")
PY
# face's call to smiley, opened as face's workload UID: where did it land?
smiley=$(ip smiley)
docker exec meshexp-face bash -c "setpriv --reuid 2200 --regid 2200 --clear-groups -- \
  bash -c 'exec 3<>/dev/tcp/$smiley/8000; sleep 2' & sleep 1; ss -tneH state established 2>/dev/null" |
  awk -v peer="$smiley:8000" '
    $4 == peer { client = $3 }
    { seen[$4] = $3 }
    END {
      if (client != "" && seen[client] ~ /:4140$/)
        printf "face   -> %s captured: it landed on face'"'"'s proxy at %s, which holds it until a policy controller answers\n", peer, seen[client]
      else { print "face: the call to smiley was not captured by its proxy"; exit 1 }
    }'
echo "demo-trio: manifests in out/manifests; stop with: meshexp-build stop --workload face (and smiley, color)"
