# Scale-out figures (docs/deployment.md, "Scale-out"): `make scale` builds the handler, starts
# Azurite (Blob + Queue) and the API sandbox with one tenant limit, runs 3 handler processes as
# instances fed by the test host's queue listener, SIGKILLs one mid-partition and restarts it,
# then runs the same job on one instance alone. A few minutes; it prints the figures.
# SCALE_FLAGS passes flags (for example -compare-alone=false, -tenant 60, -page-latency 3s).

SCALE_FLAGS ?=

.PHONY: scale

scale: deps
	mkdir -p .build
	CGO_ENABLED=0 $(GO) build -trimpath -o .build/scale-handler ./handler
	$(GO) run ./internal/tools/scale -handler .build/scale-handler $(SCALE_FLAGS)
