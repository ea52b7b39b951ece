package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/usage-export/usage-export/internal/store"
)

// TestLeaseKeep: Keep renews until stop, stop releases (another holder can take the lease), and a
// failed renewal cancels the kept context with the loss as its cause.
func TestLeaseKeep(t *testing.T) {
	st, err := store.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const name = "leases/p/lease"

	lease, err := st.AcquireLease(ctx, name, 30*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	kept, stop := lease.Keep(ctx)
	time.Sleep(100 * time.Millisecond) // several renewals
	if err := kept.Err(); err != nil {
		t.Fatalf("kept context ended while the lease was held: %v", context.Cause(kept))
	}
	if _, err := st.AcquireLease(ctx, name, 30*time.Millisecond); !errors.Is(err, store.ErrLeased) {
		t.Fatalf("second holder while kept: %v, want ErrLeased", err)
	}
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	again, err := st.AcquireLease(ctx, name, 30*time.Millisecond)
	if err != nil {
		t.Fatalf("after stop the lease should be free: %v", err)
	}

	// A renewal that fails (here: the lease was released under the keeper) ends the kept context.
	kept, stop = again.Keep(ctx)
	if err := again.Release(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-kept.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("kept context not cancelled after the renewal failed")
	}
	if cause := context.Cause(kept); cause == nil || !strings.Contains(cause.Error(), "lost") {
		t.Errorf("cause = %v, want the lease's loss", cause)
	}
	if err := stop(); err != nil {
		t.Errorf("stop after loss: %v", err)
	}
}
