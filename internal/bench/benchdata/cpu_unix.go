//go:build unix

package benchdata

import (
	"syscall"
	"time"
)

// CPUTime returns the process's user+system CPU time so far. On a loaded machine a benchmark's
// CPU time per operation says more than its wall time.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
