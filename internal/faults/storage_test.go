package faults

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/usage-export/usage-export/internal/azurite"
	"github.com/usage-export/usage-export/internal/azurite/azuritetest"
	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/ratelimit"
	"github.com/usage-export/usage-export/internal/sandbox"
	"github.com/usage-export/usage-export/internal/store"
)

const (
	// storageFault is the fault matrix's name for the storage outage.
	storageFault = "azurite-stopped-mid-upload"
	// busyRetry is the pause before a run that found the partition leased tries again; a dead
	// writer's blob lease expires within its TTL (15–60 s).
	busyRetry = 2 * time.Second
	// busyFor bounds how long a run waits for another writer's lease.
	busyFor = 3 * time.Minute
)

// TestFaultAzuriteStopped stops Azurite while an export is uploading parts (SIGTERM, so the
// emulator keeps what it had committed, like a storage outage rather than data loss), then
// restarts it. The run must end in bounded time as failed, the previous partition must be
// intact, and the next run must resume and commit exactly the ground truth. The failed run could
// not release its lease while storage was down, so the next run first reports the partition as
// busy until that lease expires: one writer per partition, even across an outage.
func TestFaultAzuriteStopped(t *testing.T) {
	gate(t)
	t.Parallel()
	ctx := context.Background()
	az := azuritetest.Fresh(t, &azurite.Options{Dir: t.TempDir()})
	st, err := store.NewBlob(ctx, &store.BlobOptions{ConnectionString: az.ConnectionString(), Container: "faults-outage"})
	if err != nil {
		t.Fatal(err)
	}
	sb := startSandbox(t, sandbox.Options{RecordsPerDay: matrixRecordsPerDay, PageSize: matrixPageSize, PageLatency: 20 * time.Millisecond})
	var arm midRun
	e := newExporter(t, sb, st, clientOptions{}, export.Options{PartDays: 1, Progress: arm.progress})
	p, truth := departmentPartition(t, sb)
	parts := []export.Partition{p}
	prevRun, prevHash := commitFirst(ctx, t, e, st, p)

	stopped := make(chan error, 1)
	arm.set(func() { go func() { stopped <- az.Stop() }() })
	rctx, cancel := context.WithTimeout(ctx, runTimeout)
	start := time.Now()
	sum, err := e.Run(rctx, parts)
	cancel()
	failedAfter := time.Since(start).Round(time.Second)
	var stopErr error
	select {
	case stopErr = <-stopped:
	case <-time.After(time.Minute):
		t.Fatal("Azurite was never stopped: the export finished before the trigger")
	}
	if stopErr != nil {
		t.Fatalf("stopping Azurite: %v", stopErr)
	}
	if err != nil {
		report(t, kindFault, false, "%s: run did not end within %s: %v", storageFault, runTimeout, err)
		return
	}
	r := sum.Partitions[0]
	if r.Status != export.StatusFailed {
		report(t, kindFault, false, "%s: status %s, want failed", storageFault, r.Status)
		return
	}
	if strings.Contains(r.Error, "AccountKey=") || strings.Contains(r.Error, azurite.AccountKey) {
		t.Errorf("error message carries the account key: %s", r.Error)
	}
	if err := az.Restart(ctx); err != nil {
		t.Fatalf("restarting Azurite: %v", err)
	}
	if err := checkUntouched(ctx, st, e.ManifestName(p), prevRun, prevHash); err != nil {
		report(t, kindFault, false, "%s: %v", storageFault, err)
		return
	}

	busy := 0
	var r2 export.Result
	for deadline := time.Now().Add(busyFor); ; {
		sum, err = e.Run(ctx, parts)
		if err != nil {
			t.Fatal(err)
		}
		r2 = sum.Partitions[0]
		if r2.Status != export.StatusBusy || time.Now().After(deadline) {
			break
		}
		busy++
		time.Sleep(busyRetry)
	}
	rows, err := checkResumed(ctx, st, e.ManifestName(p), r2, truth)
	if err != nil {
		report(t, kindFault, false, "%s: %v", storageFault, err)
		return
	}
	wait := ""
	if busy > 0 {
		wait = fmt.Sprintf(" after %d busy answers while the dead run's lease expired", busy)
	}
	report(t, kindFault, true, "%s: survived (run failed after %s: %q; previous intact; after restart the next run resumed%s: exact %d rows)",
		storageFault, failedAfter, tailError(r.Err, 70), wait, rows)
}

// Throttling sizes: the sandbox enforces a per-scope limit scaled from 30 calls a minute to 30
// calls in throttleWindow, and the client's budget is set to twice that, as if misconfigured, so
// the API's own 429s (with the consumption retry-after header) must slow it down.
const (
	throttleWindow   = 2 * time.Second
	throttlePerScope = 30
)

// TestFaultRateLimited runs an export against a sandbox that throttles like the real API: every
// call over the per-scope limit gets 429 with x-ms-ratelimit-microsoft.consumption-retry-after.
// The budget must see the 429s and pause, azcore must retry after the hint, and the export must
// commit exactly the ground truth.
func TestFaultRateLimited(t *testing.T) {
	gate(t)
	t.Parallel()
	const name = "429-per-scope-rate-limit"
	ctx := context.Background()
	sb := startSandbox(t, sandbox.Options{RecordsPerDay: matrixRecordsPerDay, PageSize: matrixPageSize,
		RatePerScope: throttlePerScope, RateWindow: throttleWindow})
	budget := ratelimit.New(&ratelimit.Options{PerScope: 2 * throttlePerScope, PerTenant: 20 * throttlePerScope, Window: throttleWindow})
	st := newLocal(t)
	e := newExporter(t, sb, st, clientOptions{budget: budget}, export.Options{PartDays: 1})
	p, truth := departmentPartition(t, sb)
	rctx, cancel := context.WithTimeout(ctx, runTimeout)
	sum, err := e.Run(rctx, []export.Partition{p})
	cancel()
	if err != nil {
		report(t, kindFault, false, "%s: run did not end within %s: %v", name, runTimeout, err)
		return
	}
	if r := sum.Partitions[0]; r.Status != export.StatusCommitted {
		report(t, kindFault, false, "%s: status %s, want committed (%s)", name, r.Status, r.Error)
		return
	}
	throttled, bs := sb.Stats().Throttled, budget.Stats()
	if throttled == 0 || bs.Throttled == 0 || bs.Pauses == 0 {
		report(t, kindFault, false, "%s: the API throttled %d calls, the budget saw %d 429s and paused %d times", name, throttled, bs.Throttled, bs.Pauses)
		return
	}
	rows, err := checkExact(ctx, st, e.ManifestName(p), truth)
	if err != nil {
		report(t, kindFault, false, "%s: committed but not exact: %v", name, err)
		return
	}
	report(t, kindFault, true, "%s: survived (exact: %d rows; the API throttled %d calls, the budget paused %d× and waited %s)",
		name, rows, throttled, bs.Pauses, bs.Waited.Round(100*time.Millisecond))
}
