// Package faults proves the reliability and security claims of Usage Export with figures: the
// fault matrix (every failure the API sandbox can inject, and Azurite stopped mid-upload), the
// crash tests (the real handler binary killed with SIGKILL at spread points of an export and
// restarted, while a reader checks that no partition is ever seen partial or duplicated) and the
// hostile-input table (malformed, oversized and malicious HTTP requests against the real custom
// handler). It has no production code: everything is in its tests, which `make test-faults` runs
// with USAGE_EXPORT_FAULTS=1 and summarises. docs/reliability.md explains the protocol they
// check.
package faults
