// Package lake holds the proof that a real lake engine reads the output: its test exports
// sandbox data (legacy and modern records) to the local store layout and runs the README's DuckDB
// query over it (Hive partitioning over .jsonl.gz), comparing counts and exact per-currency sums
// with the manifests' totals and the sandbox's ground truth.
package lake
