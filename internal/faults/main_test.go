package faults

import (
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/usage-export/usage-export/internal/azurite/azuritetest"
	"github.com/usage-export/usage-export/internal/testutil"
)

// EnvFaults gates the slow suites of this package (fault matrix, crash points, hostile table):
// `make test-faults` sets it, and CI runs `make test-faults`, so `make test` stays fast.
const EnvFaults = "USAGE_EXPORT_FAULTS"

// gate skips t unless the slow suites were asked for.
func gate(t *testing.T) {
	t.Helper()
	if os.Getenv(EnvFaults) != "1" {
		t.Skipf("slow reliability suite: run with %s=1 (make test-faults)", EnvFaults)
	}
}

// Result kinds, one per figure `make test-faults` prints.
const (
	kindFault   = "FAULT"
	kindCrash   = "CRASH"
	kindHostile = "HOSTILE"
)

// tally counts the outcomes of each kind for the totals that TestMain prints.
var tally = struct {
	sync.Mutex
	ok, all map[string]int
}{ok: map[string]int{}, all: map[string]int{}}

// report prints one outcome line ("FAULT 500: survived (exact: 456 rows)") at the start of a
// line on stdout, where `make test-faults` greps for it, and counts it. A failed outcome also
// fails t.
func report(t *testing.T, kind string, ok bool, format string, args ...any) {
	t.Helper()
	line := kind + " " + fmt.Sprintf(format, args...)
	tally.Lock()
	tally.all[kind]++
	if ok {
		tally.ok[kind]++
	}
	tally.Unlock()
	fmt.Fprintln(os.Stdout, line)
	if !ok {
		t.Errorf("%s", line)
	}
}

// TestMain runs the tests, stops the shared Azurite, removes the built handler and prints the
// totals lines `make test-faults` checks.
func TestMain(m *testing.M) {
	code := azuritetest.Main(m)
	if world != nil {
		world.old.Close()
	}
	testutil.RemoveHandlerBinary()
	if os.Getenv(EnvFaults) == "1" {
		tally.Lock()
		fmt.Printf("faults survived: %d/%d\n", tally.ok[kindFault], tally.all[kindFault])
		fmt.Printf("crash points exact: %d/%d\n", tally.ok[kindCrash], tally.all[kindCrash])
		fmt.Printf("hostile inputs rejected cleanly: %d/%d\n", tally.ok[kindHostile], tally.all[kindHostile])
		tally.Unlock()
	}
	os.Exit(code)
}
