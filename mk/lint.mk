# Lint: gofmt, go vet and golangci-lint (pinned, built once into a cache outside the repo).
GOLANGCI_VERSION := v2.15.0
TOOLS_CACHE ?= $(HOME)/.cache/usage-export-tools
GOLANGCI := $(TOOLS_CACHE)/golangci-lint-$(GOLANGCI_VERSION)/golangci-lint

.PHONY: lint

$(GOLANGCI):
	GOBIN=$(dir $(GOLANGCI)) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VERSION)

lint: $(GOLANGCI)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GOLANGCI) run ./...
