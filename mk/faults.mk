# test-faults proves the reliability claims with figures (docs/reliability.md): the fault matrix,
# the crash points and the hostile-input table of internal/faults (USAGE_EXPORT_FAULTS=1 turns
# them on), then a short run of every fuzz target. It prints one line per fault kind, crash point,
# hostile input and fuzz target, then the totals, and fails unless every total is N/N with N > 0.
# The full output is kept in .build/ for a failure's details.

# FAULTS_TIMEOUT bounds the go test run of internal/faults.
FAULTS_TIMEOUT ?= 15m
# FAULTS_PARALLEL lets the crash points that mostly wait (Azurite leases) run side by side; the
# local crash points limit themselves to two at a time.
FAULTS_PARALLEL ?= 12
# FUZZ_TIME is how long each fuzz target runs.
FUZZ_TIME ?= 20s
FAULTS_LOG := .build/test-faults.log
# FUZZ_TARGETS are package:Target pairs: scope parsing, page decoding (alone, against the
# jsontext decoder as the oracle, and its member reports against a jsontext walk), HTTP request
# parsing.
FUZZ_TARGETS := ./internal/scope:FuzzParse ./internal/consumption:FuzzParsePage \
	./internal/consumption:FuzzParsePageMatchesReference ./internal/consumption:FuzzParsePageMembers \
	./functions:FuzzHTTPRequest ./functions:FuzzInvocation
FAULTS_TOTALS := ^(faults survived|crash points exact|hostile inputs rejected cleanly): ([1-9][0-9]*)/\2$$

test-faults: deps
	@mkdir -p .build
	@rc=0; \
	USAGE_EXPORT_FAULTS=1 $(GO) test -count=1 -v -parallel $(FAULTS_PARALLEL) -timeout $(FAULTS_TIMEOUT) \
		./internal/faults/ > $(FAULTS_LOG) 2>&1 || rc=1; \
	grep -E '^(FAULT|CRASH|HOSTILE) ' $(FAULTS_LOG); \
	for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; log=.build/fuzz-$$name.log; \
		if $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZ_TIME) $$pkg > $$log 2>&1; then \
			echo "FUZZ $$name: no failure in $(FUZZ_TIME) ($$(grep -o 'execs: [0-9]*' $$log | tail -1))"; \
		else \
			echo "FUZZ $$name: FAILED (new failing input under $$pkg/testdata/fuzz/$$name)"; tail -30 $$log; rc=1; \
		fi; \
	done; \
	grep -E '^(faults survived|crash points exact|hostile inputs rejected cleanly): ' $(FAULTS_LOG); \
	if [ "$$(grep -cE '$(FAULTS_TOTALS)' $(FAULTS_LOG))" != 3 ]; then \
		echo "test-faults: a total is missing or not N/N; the failures (full log: $(FAULTS_LOG)):"; \
		grep -E '^\s*(--- FAIL|panic:|FAIL)|_test\.go:[0-9]+:' $(FAULTS_LOG) | head -60; \
		rc=1; \
	fi; \
	exit $$rc
