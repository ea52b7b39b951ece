// Package azuritetest gives tests one Azurite per test binary, and skips them under go test -short.
package azuritetest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/usage-export/usage-export/internal/azurite"
)

// EnvConnection names the environment variable holding a running Azurite's connection string.
const EnvConnection = "USAGE_EXPORT_TEST_AZURITE_CONNECTION"

var (
	mu      sync.Mutex
	shared  *azurite.Server
	started bool // shared was started here and must be stopped
	failure error
	tried   bool
)

// Start returns the test binary's Azurite, starting it on first use: the one named by
// USAGE_EXPORT_TEST_AZURITE_CONNECTION (for example started by .ci/run), or else one it starts
// from node_modules. It skips t under -short (the unit and table layers run without Node);
// otherwise it fails t (never skips) when Azurite cannot be attached or started; the hint says to
// run "npm ci". The server is stopped by Main; a binary without Main leaves it to the kernel (the
// emulator gets SIGKILL when the test binary exits, on Linux).
func Start(t testing.TB) *azurite.Server {
	t.Helper()
	SkipShort(t)
	mu.Lock()
	defer mu.Unlock()
	if !tried {
		tried = true
		shared, started, failure = get(t)
	}
	if failure != nil {
		t.Fatalf("azurite unavailable (set %s or run npm ci at the module root): %v", EnvConnection, failure)
	}
	return shared
}

func get(t testing.TB) (*azurite.Server, bool, error) {
	if cs := os.Getenv(EnvConnection); cs != "" {
		s, err := azurite.Attach(cs)
		return s, false, err
	}
	s, err := azurite.Start(context.Background(), &azurite.Options{
		Logf: func(format string, args ...any) {
			if testing.Verbose() {
				fmt.Fprintf(os.Stderr, format+"\n", args...)
			}
		},
	})
	return s, err == nil, err
}

// Main runs the tests and then stops the Azurite that Start started, returning m.Run's code:
//
//	func TestMain(m *testing.M) { os.Exit(azuritetest.Main(m)) }
func Main(m *testing.M) int {
	code := m.Run()
	mu.Lock()
	defer mu.Unlock()
	if started {
		if err := shared.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "azuritetest: stopping azurite: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
		started = false
	}
	return code
}

// Fresh starts a separate Azurite owned by the test (for tests that kill or restart it),
// stopped by t.Cleanup. It skips t under -short, and fails t when Azurite cannot start.
func Fresh(t testing.TB, o *azurite.Options) *azurite.Server {
	t.Helper()
	SkipShort(t)
	if o == nil {
		o = &azurite.Options{}
	}
	if o.Logf == nil {
		o.Logf = t.Logf
	}
	s, err := azurite.Start(context.Background(), o)
	if err != nil {
		t.Fatalf("azurite unavailable (run npm ci at the module root): %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stopping azurite: %v", err)
		}
	})
	return s
}

// SkipShort skips t under go test -short: Azurite runs on Node, and -short runs the unit and
// table layers only, without it.
func SkipShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs Azurite (Node): skipped under -short")
	}
}
