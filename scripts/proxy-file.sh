#!/usr/bin/env bash
# Print the proxy binary the demos use, and say on stderr which it is:
# PROXY_FILE if set; else the real linkerd2-proxy kept as test equipment
# beside this checkout (../shared/test-equipment); else the PROXY STAND-IN,
# built from tests/standin-proxy.
set -euo pipefail
cd "$(dirname "$0")/.."
real=../shared/test-equipment/linkerd2-proxy/linkerd2-proxy
if [ -n "${PROXY_FILE:-}" ]; then
  echo "proxy: $PROXY_FILE (from PROXY_FILE)" >&2
  printf '%s\n' "$PROXY_FILE"
elif [ -f "$real" ]; then
  echo "proxy: the real linkerd2-proxy ($(cd "$(dirname "$real")" && pwd)/linkerd2-proxy)" >&2
  printf '%s\n' "$real"
else
  echo "proxy: no real linkerd2-proxy here: building the PROXY STAND-IN (test equipment, not a Linkerd proxy); set PROXY_FILE=/path/to/linkerd2-proxy for a real one" >&2
  (cd tests/standin-proxy && go build -trimpath -ldflags "-s -w" -o ../../build/standin-proxy .)
  printf '%s\n' build/standin-proxy
fi
