//go:build !linux

package bench

import "time"

// rusage is only read on Linux; elsewhere the harness reports zero CPU and RSS.
func rusage(any) (time.Duration, int64) { return 0, 0 }

// watchPeakRSS has no /proc to read elsewhere.
func watchPeakRSS(int) func() int64 { return func() int64 { return 0 } }
