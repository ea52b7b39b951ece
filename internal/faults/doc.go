// Package faults proves the reliability and security claims of Usage Export with figures, in its
// tests only.
package faults
