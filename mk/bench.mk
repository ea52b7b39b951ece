# Performance (docs/performance.md). `make bench` builds the handler as `make stage` does and
# the harness, runs every scenario on this machine (the exporter at 100 k and 1 M records to a
# local directory and to Azurite, the gzip-only and fetch + gzip floors, three times each for the
# median; the SDK baseline, the plan table — calls and wall time against the floor under the
# observed per-scope-kind limits, date ranges honoured and ignored —, a rate-limited run and the
# handler's start-up), prints the table,
# writes it as Markdown to $(BENCH_OUT), then runs the hot-path Go benchmarks. A few minutes;
# the figures are only comparable within one run.
# BENCH_FLAGS passes harness flags (for example -no-azurite, -only rate, -large 300000, -repeat 1);
# the plan table alone: make bench BENCH_FLAGS='-only plan' BENCH_GO=''.

BENCH_OUT   ?= .build/bench.md
BENCH_FLAGS ?=
BENCH_GO    ?= ExtractShapes|ParsePage|ListPages|LineEncode|PartitionWrite

bench: deps
	mkdir -p .build
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags="-s -w" -o .build/bench-handler ./handler
	$(GO) build -o .build/bench ./internal/bench/cmd/bench
	.build/bench -handler .build/bench-handler -out $(BENCH_OUT) $(BENCH_FLAGS)
	$(GO) test -run '^$$' -bench '$(BENCH_GO)' -benchmem -count=1 ./internal/record ./internal/consumption ./internal/export
