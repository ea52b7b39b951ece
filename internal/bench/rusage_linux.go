package bench

import (
	"bytes"
	"os"
	"strconv"
	"sync/atomic"
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

// hwmInterval is how often the child's VmHWM is read.
const hwmInterval = 5 * time.Millisecond

// watchPeakRSS follows the peak RSS of process pid (VmHWM in /proc/pid/status, the high-water
// mark of the memory the program has mapped since exec) until it exits; the returned function
// stops watching and returns the last value seen.
//
// ru_maxrss cannot be used for the children: Go starts them with vfork semantics (CLONE_VM), and
// Linux carries the high-water RSS of the address space an exec replaces into the new program's
// ru_maxrss, so every child would report at least the harness's own peak (which holds a sandbox).
// VmHWM belongs to the program's own address space. It only grows, so the last read before exit
// is the peak unless the program grew in its last few milliseconds.
func watchPeakRSS(pid int) func() int64 {
	var hwm atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	path := "/proc/" + strconv.Itoa(pid) + "/status"
	go func() {
		defer close(done)
		t := time.NewTicker(hwmInterval)
		defer t.Stop()
		for {
			if v, ok := readVmHWM(path); ok && v > hwm.Load() {
				hwm.Store(v)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() int64 {
		close(stop)
		<-done
		return hwm.Load()
	}
}

// readVmHWM reads the VmHWM line of a /proc status file, in bytes.
func readVmHWM(path string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	i := bytes.Index(b, []byte("VmHWM:"))
	if i < 0 {
		return 0, false // a zombie has no memory lines
	}
	f := bytes.Fields(b[i+len("VmHWM:"):])
	if len(f) < 2 || string(f[1]) != "kB" {
		return 0, false
	}
	kb, err := strconv.ParseInt(string(f[0]), 10, 64)
	return kb * 1024, err == nil
}
