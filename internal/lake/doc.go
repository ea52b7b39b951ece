// Package lake holds the proof that a real lake engine reads the output: its test exports
// sandbox data to the local store layout and queries it with DuckDB (Hive partitioning over
// .jsonl.gz), comparing counts and per-currency sums with the sandbox's ground truth.
package lake
