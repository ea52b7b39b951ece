package bench

import (
	"syscall"
	"time"
)

// rusage reads CPU time and peak RSS from a process's system usage (ru_maxrss is in KiB on
// Linux).
func rusage(sys any) (time.Duration, int64) {
	ru, ok := sys.(*syscall.Rusage)
	if !ok || ru == nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), ru.Maxrss * 1024
}
