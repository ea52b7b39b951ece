package focus

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/metric"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/scope"
	"github.com/usage-export/usage-export/internal/store"
)

// putInput commits an input partition of n copies of rec (one part) the way export does: part
// metadata runid, manifest with the part's SHA-256 and the cost total.
func putInput(t *testing.T, st *store.Local, sc scope.Scope, p period.Period, metric metric.Metric, n int, rec string, cost string) {
	t.Helper()
	ctx := context.Background()
	dir := "usage/" + export.Partition{Scope: sc, Period: p, Metric: metric}.RelPath()
	m := &manifest.Manifest{ManifestVersion: manifest.Version, Status: manifest.StatusCommitted, BillingPeriod: p.String(),
		Metric: metric, Source: "usageDetails", Compression: "gzip", RunInfo: manifest.RunInfo{RunID: "run-" + string(metric)},
		Totals: map[string]map[string]string{"cost": {"USD": "0"}}, Blobs: []manifest.Blob{}}
	if n > 0 {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		line := []byte(strings.ReplaceAll(rec, "\n", "") + "\n")
		for i := 0; i < n; i++ {
			_, _ = zw.Write(line)
		}
		_ = zw.Close()
		sum := sha256.Sum256(buf.Bytes())
		name := dir + "/part-x.jsonl.gz"
		if _, err := st.Put(ctx, name, bytes.NewReader(buf.Bytes()), &store.PutOptions{Metadata: map[string]string{store.MetaRunID: m.RunInfo.RunID}}); err != nil {
			t.Fatal(err)
		}
		m.Blobs = append(m.Blobs, manifest.Blob{BlobName: name, SHA256: hex.EncodeToString(sum[:]), DataRowCount: int64(n)})
		m.DataRowCount = int64(n)
		m.Totals["cost"]["USD"] = mulText(cost, strconv.Itoa(n))
	}
	b, _ := m.Marshal()
	if _, err := st.Put(ctx, dir+"/_manifest.json", bytes.NewReader(b), nil); err != nil {
		t.Fatal(err)
	}
}

// TestBuildMemoryIsBounded builds partitions of 10 000 and 100 000 amortized rows and measures
// the peak live heap during each build (collected and read every 100 ms; the reading also counts
// what the build allocates while it is taken): streaming keeps it to the buffers, far below the
// partition's size. Run with -v for the figures.
func TestBuildMemoryIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 110 000 rows")
	}
	sc := scope.MustParse("/providers/Microsoft.Billing/billingAccounts/8608480")
	p := period.Period{Year: 2024, Month: 1}
	var peaks []uint64
	for _, n := range buildSizes {
		st, err := store.NewLocal(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		putInput(t, st, sc, p, metric.AmortizedCost, n, legacyCovered, "1.37088")
		putInput(t, st, sc, p, metric.ActualCost, 0, "", "0")
		runtime.GC()
		var base runtime.MemStats
		runtime.ReadMemStats(&base)
		var peak atomic.Uint64
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			// The live heap: collected, then measured, every 100 ms.
			var ms runtime.MemStats
			for {
				runtime.GC()
				runtime.ReadMemStats(&ms)
				if ms.HeapAlloc > peak.Load() {
					peak.Store(ms.HeapAlloc)
				}
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		}()
		start := time.Now()
		res := New(st, &Options{Prefix: "usage"}).Build(context.Background(), sc, p, false)
		close(stop)
		<-done
		if res.Status != StatusCommitted || res.Rows != int64(n) {
			t.Fatalf("%d rows: %+v", n, res)
		}
		grow := peak.Load() - min(peak.Load(), base.HeapAlloc)
		peaks = append(peaks, grow)
		t.Logf("%7d rows: %.2f s, %.0f rows/s, peak live heap %.1f MiB above the start", n, time.Since(start).Seconds(),
			float64(n)/time.Since(start).Seconds(), float64(grow)/(1<<20))
	}
	// The lines of 100 000 rows are some hundred MB uncompressed; the build keeps a few MiB.
	if peaks[1] > 32<<20 {
		t.Errorf("peak live heap %d bytes at %d rows (%d at %d): not streaming", peaks[1], buildSizes[1], peaks[0], buildSizes[0])
	}
}

// buildSizes are the partition sizes TestBuildMemoryIsBounded compares.
var buildSizes = []int{10_000, 100_000}
