# The few verbs people type. Each target does its own set-up.
.PHONY: docs setup setup-dev setup-test demo demo-trio lab lab-down bench soak test lint unit integration go-test golden standin clean apiserver-prepare publish-prepare cluster-prepare

VENV := .venv/bin

# What building and running an image needs (make demo); linting adds the dev
# tools (setup-dev); the tests also need etcd and the multi-platform tools
# (setup-test).
setup:
	scripts/setup.sh

setup-dev:
	scripts/setup.sh --with dev

setup-test:
	scripts/setup.sh --with dev --with apiserver --with publish --with browser

demo:
	scripts/demo.sh

demo-trio:
	scripts/demo-trio.sh

# The mesh lab in out/lab (a real Linkerd control plane; see the README).
lab:
	scripts/lab-up.sh

lab-down:
	.venv/bin/meshexp-build lab down --dir out/lab

test: setup-test lint go-test apiserver-prepare publish-prepare cluster-prepare
	$(VENV)/pytest

# kube-apiserver from the Go module proxy (about 11 minutes cold, then cached)
# and etcd, for the tests marked `kube`; skipped when MESHEXP_TEST_KUBECONFIG
# names an API server of your own.
apiserver-prepare: setup-test
	@if [ -z "$${MESHEXP_TEST_KUBECONFIG:-}" ]; then $(VENV)/meshexp-build apiserver --prepare; fi

# kind and its node image, built offline, for the tests marked `cluster` and
# `e2e` (cold, after apiserver-prepare: the Kubernetes multi-call binary about 3
# minutes, CoreDNS 1, etcd and the node image under 1 each; then cached).
cluster-prepare: setup-test
	$(VENV)/meshexp-build cluster prepare --dir out/cluster

lint: setup-dev
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/mypy
	$(VENV)/lint-imports
	$(VENV)/shellcheck scripts/*.sh .ci/run
	scripts/actionlint.sh
	$(VENV)/python scripts/docs.py --check
	NO_MKDOCS_2_WARNING=1 $(VENV)/mkdocs build --strict --quiet --site-dir "$$(mktemp -d)"

# The docs site in site/: the reference pages generated from the code, then MkDocs.
docs: setup-dev
	$(VENV)/python scripts/docs.py
	NO_MKDOCS_2_WARNING=1 $(VENV)/mkdocs build --strict

# -trimpath and the SPIRE with only the configured plugins, as in the image
# builds (builder/build/gobuild.py, spire_plugins.py), so that vetting
# go/cmd/multicall reuses the compiled SPIRE packages instead of compiling the
# full SPIRE again.
go-test: export GOFLAGS = -trimpath
go-test: setup
	modfile=$$($(VENV)/python -c 'from builder.build.gobuild import trimmed_modfile_flag as f; from builder.core.resources import go_dir; print(f(go_dir()))') && \
	  cd go && go vet "$$modfile" ./... && go test "$$modfile" ./...
	cd tests/standin-proxy && go vet ./... && go test ./...

# What the multi-platform publish test needs, built once and cached (cold: SPIRE
# for arm64 about 8 minutes, syft about 5, the arm64 Debian root about 3),
# with progress on the way.
publish-prepare: setup-test
	$(VENV)/meshexp-build publish --prepare --offline --workload smiley --platform linux/amd64,linux/arm64

unit: setup-dev
	$(VENV)/pytest tests/unit

integration: setup-test
	$(VENV)/pytest tests/integration

bench: setup-test
	$(VENV)/python -m bench.run_all

# Rotations and restarts under load in the mesh lab (about 11 minutes): bench/REPORT.md 11.
soak: setup-test
	$(VENV)/python -m bench.soak

golden: setup-dev
	$(VENV)/pytest tests/unit/test_render.py --update-golden
	$(VENV)/python -c "from builder.config.catalog import catalog_schema_text as t; open('images/catalog.schema.json', 'w').write(t())"

standin:
	cd tests/standin-proxy && go build -trimpath -ldflags "-s -w" -o ../../build/standin-proxy .

clean:
	rm -rf build out .pytest_cache .mypy_cache .ruff_cache
