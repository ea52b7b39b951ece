package store_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/usage-export/usage-export/internal/azurite/azuritetest"
	"github.com/usage-export/usage-export/internal/store"
)

// envLeaseHolder makes the test binary a child that holds a Local lease until killed:
// "<dir>|<name>".
const envLeaseHolder = "STORE_TEST_LEASE_HOLDER"

func TestMain(m *testing.M) {
	if spec := os.Getenv(envLeaseHolder); spec != "" {
		os.Exit(holdLease(spec))
	}
	os.Exit(azuritetest.Main(m))
}

// holdLease acquires the lease, says "held" on stdout, and waits for stdin to close.
func holdLease(spec string) int {
	var dir, name string
	for i := len(spec) - 1; i >= 0; i-- {
		if spec[i] == '|' {
			dir, name = spec[:i], spec[i+1:]
			break
		}
	}
	st, err := store.NewLocal(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if _, err := st.AcquireLease(context.Background(), name, time.Minute); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Println("held")
	io.Copy(io.Discard, os.Stdin)
	return 0
}
