// Package lake holds the proof that a real lake engine (DuckDB) reads the output.
package lake
