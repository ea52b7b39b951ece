package faults

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/usage-export/usage-export/internal/azurite/azuritetest"
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
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	if os.Getenv(EnvFaults) == "1" {
		tally.Lock()
		fmt.Printf("faults survived: %d/%d\n", tally.ok[kindFault], tally.all[kindFault])
		fmt.Printf("crash points exact: %d/%d\n", tally.ok[kindCrash], tally.all[kindCrash])
		fmt.Printf("hostile inputs rejected cleanly: %d/%d\n", tally.ok[kindHostile], tally.all[kindHostile])
		tally.Unlock()
	}
	os.Exit(code)
}

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

// handlerBinary builds the handler once per test binary (go build, so the build cache makes
// it cheap after the first time) and returns its path.
func handlerBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "usage-export-faults-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "handler")
		root, err := filepath.Abs(filepath.Join("..", ".."))
		if err != nil {
			buildErr = err
			return
		}
		cmd := exec.Command("go", "build", "-o", binPath, "./handler")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./handler: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}
