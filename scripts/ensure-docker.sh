#!/usr/bin/env bash
# Make sure a Docker engine answers on /var/run/docker.sock.
# Where none does and we are root on Debian, install Debian's docker.io and
# start dockerd in the background with its log in a file. Idempotent.
set -eu

sock=${DOCKER_SOCKET:-/var/run/docker.sock}
log=${DOCKERD_LOG:-/var/log/meshexp-dockerd.log}
client=/usr/bin/docker

die() { printf 'ensure-docker: %s\n' "$*" >&2; exit 3; }

engine_answers() {
  [ -S "$sock" ] && "$client" -H "unix://$sock" version --format '{{.Server.Version}}' >/dev/null 2>&1
}

if [ -x "$client" ] && engine_answers; then
  echo "ensure-docker: engine answers on $sock"
  exit 0
fi

[ "$(id -u)" = 0 ] || die "no engine answers on $sock and we are not root: start one (sudo dockerd &) or set DOCKER_HOST"
command -v apt-get >/dev/null || die "no engine answers on $sock and this is not Debian: install and start Docker by hand"

if ! command -v dockerd >/dev/null || [ ! -x "$client" ]; then
  echo "ensure-docker: installing Debian's docker.io"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends docker.io iptables >/dev/null
fi

echo "ensure-docker: starting dockerd (log: $log)"
nohup dockerd --host "unix://$sock" >"$log" 2>&1 &

for _ in $(seq 1 120); do
  if engine_answers; then
    echo "ensure-docker: engine $("$client" version --format '{{.Server.Version}}') answers on $sock"
    exit 0
  fi
  sleep 0.5
done
tail -n 20 "$log" >&2 || true
die "dockerd did not answer on $sock within 60 s; see $log"
