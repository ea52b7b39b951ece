// Package sandboxtest starts the API sandbox on loopback for a test, and skips the test under go test -short.
package sandboxtest

import (
	"testing"

	"github.com/usage-export/usage-export/internal/sandbox"
)

// Start starts a sandbox with o (nil means the sandbox's defaults) on loopback and stops it when
// t and its subtests end. It fails t when the sandbox cannot start. Under go test -short it skips
// t: the sandbox is the integration layer, and -short runs the unit and table layers only.
func Start(t testing.TB, o *sandbox.Options) *sandbox.Server {
	t.Helper()
	SkipShort(t)
	sb, err := sandbox.New(o)
	if err != nil {
		t.Fatalf("sandbox: %v", err)
	}
	if err := sb.Start(); err != nil {
		t.Fatalf("starting the sandbox: %v", err)
	}
	t.Cleanup(func() { _ = sb.Close() })
	return sb
}

// SkipShort skips t under go test -short, for a test of the integration or end-to-end layers
// that does not start its sandbox with Start (a built binary, the host protocol).
func SkipShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration layer (sandbox, Azurite, built binary or host end to end): skipped under -short")
	}
}
