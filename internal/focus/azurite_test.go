package focus

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/usage-export/usage-export/internal/azurite/azuritetest"
	"github.com/usage-export/usage-export/internal/consumption"
	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/metric"
	"github.com/usage-export/usage-export/internal/mgmt"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/sandbox"
	"github.com/usage-export/usage-export/internal/sandbox/sandboxtest"
	"github.com/usage-export/usage-export/internal/scope"
	"github.com/usage-export/usage-export/internal/store"
)

func TestMain(m *testing.M) { os.Exit(azuritetest.Main(m)) }

// TestBuildOnAzurite builds a FOCUS partition in Blob Storage (Azurite): the staged part is
// moved with one block-list commit, the manifest matches the ground truth, and Verify is clean.
func TestBuildOnAzurite(t *testing.T) {
	ctx := context.Background()
	srv := azuritetest.Start(t)
	st, err := store.NewBlob(ctx, &store.BlobOptions{ConnectionString: srv.ConnectionString(), Container: "focus-test",
		BlockSize: 1 << 20, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	sb := sandboxtest.Start(t, &sandbox.Options{RecordsPerDay: 3, Now: func() time.Time { return testNow }})
	client, err := consumption.NewClient(mgmt.StaticToken(sb.Token()), &consumption.Options{
		Endpoint: sb.URL(), ClientOptions: policy.ClientOptions{Retry: policy.RetryOptions{RetryDelay: 10 * time.Millisecond}},
	})
	if err != nil {
		t.Fatal(err)
	}
	src := &export.UsageDetails{Client: client, Version: client.APIVersion()}
	b := New(st, &Options{Prefix: "usage", LeaseTTL: 15 * time.Second})
	e := export.New(st, func(scope.Scope) (export.Source, error) { return src, nil },
		&export.Options{Prefix: "usage", PartDays: -1, LeaseTTL: 15 * time.Second, Now: func() time.Time { return testNow }, AfterRun: b.AfterRun})
	sc := scope.MustParse("/providers/Microsoft.Billing/departments/301001")
	p := period.Of(testNow).Add(-3) // a commitment payment month
	sum, err := e.Run(ctx, []export.Partition{{Scope: sc, Period: p, Metric: metric.ActualCost}, {Scope: sc, Period: p, Metric: metric.AmortizedCost}})
	if err != nil || sum.Failed() > 0 {
		t.Fatalf("export: %v %v", err, sum.Err())
	}
	if len(sum.Derived) != 1 || sum.Derived[0].Status != StatusCommitted {
		t.Fatalf("derived %+v", sum.Derived)
	}
	raw, err := b.readBlob(ctx, b.ManifestName(sc, p))
	if err != nil || raw == nil {
		t.Fatalf("manifest: %v", err)
	}
	m, err := ParseManifest(raw)
	if err != nil {
		t.Fatal(err)
	}
	actual, _ := sb.GroundTruth(sc, p, string(metric.ActualCost))
	amort, _ := sb.GroundTruth(sc, p, string(metric.AmortizedCost))
	for cur, want := range actual.Sums {
		if !sameDec(m.Totals["BilledCost"][cur], want) {
			t.Errorf("BilledCost %s %s, ground truth %s", cur, m.Totals["BilledCost"][cur], want)
		}
	}
	for cur, want := range amort.Sums {
		if !sameDec(m.Totals["EffectiveCost"][cur], want) {
			t.Errorf("EffectiveCost %s %s, ground truth %s", cur, m.Totals["EffectiveCost"][cur], want)
		}
	}
	props, err := st.Props(ctx, m.Blobs[0].BlobName)
	if err != nil || props.Metadata[store.MetaRunID] != m.RunInfo.RunID {
		t.Errorf("live part %s: %v, metadata %v", m.Blobs[0].BlobName, err, props.Metadata)
	}
	v, err := Verify(ctx, st, b.ManifestName(sc, p), raw)
	if err != nil || len(v.Problems) != 0 {
		t.Fatalf("verify: %v %v", err, v)
	}
	t.Logf("Azurite: %d FOCUS rows (%d amortized + %d actual), %d bytes; BilledCost %v, EffectiveCost %v",
		m.DataRowCount, m.RowsFrom[metric.AmortizedCost], m.RowsFrom[metric.ActualCost], m.ByteCount, m.Totals["BilledCost"], m.Totals["EffectiveCost"])
}
