# Usage Export. `make demo` and `make test` are the two commands a new machine needs.
SHELL := /bin/bash
GO ?= go

.PHONY: all build test test-short lint vet fmt demo bench test-faults deps clean

all: build

# deps installs what the tests need from the repo's own files: Go modules and the pinned Azurite.
# `go list -deps -test` fetches exactly the modules the build needs (not every platform's DuckDB
# library that `go mod download` would fetch).
deps: node_modules/.package-lock.json
	$(GO) list -deps -test ./... >/dev/null

# A node_modules that is a link (a git worktree sharing another checkout's install) is left alone:
# npm ci would empty the linked folder and install a copy here, under the other checkout's feet.
node_modules/.package-lock.json: package.json package-lock.json
	@if [ -L node_modules ]; then echo "node_modules is a link: npm ci skipped"; \
	else npm ci --no-audit --no-fund --loglevel=error; fi

build:
	$(GO) build -o .build/handler ./handler

# test runs every layer: unit tables, sandbox + Azurite integration, host-protocol end to end.
test: deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

# test-short runs the unit and table layers only: no Node, no Azurite, no sandbox, no built
# binary (sandboxtest, azuritetest and testutil.HandlerBinary skip their tests under -short).
test-short:
	$(GO) test -short -count=1 ./...

vet:
	$(GO) vet ./...

fmt:
	gofmt -l -w $$(git ls-files '*.go')

demo: deps
	$(GO) run ./handler demo

clean:
	rm -rf .build

-include mk/*.mk
