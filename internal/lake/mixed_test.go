package lake

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/usage-export/usage-export/internal/consumption"
	"github.com/usage-export/usage-export/internal/costdetails"
	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/mgmt"
	"github.com/usage-export/usage-export/internal/sandbox"
	"github.com/usage-export/usage-export/internal/sandbox/sandboxtest"
	"github.com/usage-export/usage-export/internal/scope"
	"github.com/usage-export/usage-export/internal/store"
)

// TestDuckDBReadsMixedSources exports an EA billing account and an MCA billing profile, one
// month through usageDetails and the next through Cost Details (and the other way round for the
// other metric), then runs the README's DuckDB query, unchanged, on the tree: it reads both
// sources, and its counts and exact sums match the sandbox's ground truth for every partition.
func TestDuckDBReadsMixedSources(t *testing.T) {
	sb := sandboxtest.Start(t, &sandbox.Options{RecordsPerDay: 2, Now: func() time.Time { return now }, PollInterval: 10 * time.Millisecond})
	var scopes []scope.Scope
	for _, k := range []scope.Kind{scope.BillingAccount, scope.BillingProfile} {
		for _, s := range sb.Scopes() {
			if s.Kind == k {
				scopes = append(scopes, s)
				break
			}
		}
	}
	dir := t.TempDir()
	st, err := store.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	retry := policy.ClientOptions{Retry: policy.RetryOptions{RetryDelay: 10 * time.Millisecond}}
	client, err := consumption.NewClient(mgmt.StaticToken(sb.Token()), &consumption.Options{Endpoint: sb.URL(), ClientOptions: retry})
	if err != nil {
		t.Fatal(err)
	}
	ud := &export.UsageDetails{Client: client, Version: client.APIVersion(), Expand: "meterDetails,additionalInfo"}
	cd, err := costdetails.NewClient(mgmt.StaticToken(sb.Token()), &costdetails.Options{Endpoint: sb.URL(), ClientOptions: retry,
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	// usageDetails for the older month's actual cost and the newer month's amortized cost,
	// Cost Details for the other two.
	pick := func(p export.Partition, _ *manifest.Manifest) (export.Source, string, error) {
		if (p.Period == testPeriods[0]) == (p.Metric == "actualcost") {
			return ud, "test: usageDetails", nil
		}
		return &export.CostDetails{Client: cd}, "test: costDetails", nil
	}
	e := export.New(st, nil, &export.Options{Prefix: "usage", Pick: pick, Now: func() time.Time { return now }})
	sum, err := e.Run(context.Background(), bothMetrics(scopes, testPeriods))
	if err != nil || sum.Failed() > 0 {
		t.Fatalf("export: %v %v", err, sum.Err())
	}
	sources := map[manifest.Source]int{}
	for _, r := range sum.Partitions {
		sources[r.Source]++
		m := readManifest(t, st, e.ManifestName(r.Partition))
		if m.Source != r.Source || m.SourceReason != r.Reason || r.Reason == "" {
			t.Errorf("%s: manifest source %s (%q), result %s (%q)", r.Partition.RelPath(), m.Source, m.SourceReason, r.Source, r.Reason)
		}
	}
	if sources[manifest.SourceUsageDetails] != 4 || sources[manifest.SourceCostDetails] != 4 {
		t.Fatalf("sources %v, want 4 partitions each", sources)
	}

	// The README's query, unchanged but for the folder.
	res := queryREADME(t, dir)
	gotRows, gotCost := res.rows, res.sums
	t.Logf("README query on the mixed tree:\n%s", strings.Join(res.table, "\n"))
	for _, r := range sum.Partitions {
		p := r.Partition
		truth, err := sb.GroundTruth(p.Scope, p.Period, string(p.Metric))
		if err != nil {
			t.Fatal(err)
		}
		k := keyOf(t, p)
		if gotRows[k] != truth.Rows || truth.Rows == 0 {
			t.Errorf("%v (%s): README query counts %d rows, ground truth %d", k, r.Source, gotRows[k], truth.Rows)
		}
		for cur, want := range truth.Sums {
			if !sameDecimal(gotCost[k][cur], want) {
				t.Errorf("%v %s (%s): README query sum %s, ground truth %s", k, cur, r.Source, gotCost[k][cur], want)
			}
		}
	}
}
