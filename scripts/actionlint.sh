#!/usr/bin/env bash
# Lint the GitHub Actions workflows with actionlint, installed from the Go
# module proxy into the Go bin folder on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(go env GOPATH)/bin/actionlint
if [ ! -x "$bin" ]; then
  go install github.com/rhysd/actionlint/cmd/actionlint@v1.7.12
fi
"$bin" -shellcheck=.venv/bin/shellcheck .github/workflows/*.yml
echo "actionlint: workflows ok"
