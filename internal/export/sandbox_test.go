package export_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/klauspost/compress/gzip"

	"github.com/usage-export/usage-export/docs/schemas"
	"github.com/usage-export/usage-export/internal/azurite/azuritetest"
	"github.com/usage-export/usage-export/internal/consumption"
	"github.com/usage-export/usage-export/internal/costdetails"
	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/metric"
	"github.com/usage-export/usage-export/internal/mgmt"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/sandbox"
	"github.com/usage-export/usage-export/internal/sandbox/sandboxtest"
	"github.com/usage-export/usage-export/internal/scope"
	"github.com/usage-export/usage-export/internal/store"
	"github.com/usage-export/usage-export/internal/verify"
)

func TestMain(m *testing.M) { os.Exit(azuritetest.Main(m)) }

// sandboxNow is "today" for the sandbox and the exporter: mid-month, so the previous month is
// final and the current one open.
var sandboxNow = time.Date(2026, 10, 14, 9, 0, 0, 0, time.UTC)

func newSandbox(t *testing.T, o *sandbox.Options) *sandbox.Server {
	t.Helper()
	if o == nil {
		o = &sandbox.Options{}
	}
	o.Now = func() time.Time { return sandboxNow }
	if o.RecordsPerDay == 0 {
		o.RecordsPerDay = 3
	}
	return sandboxtest.Start(t, o)
}

func pickScopes(t *testing.T, sb *sandbox.Server, kinds ...scope.Kind) []scope.Scope {
	t.Helper()
	var out []scope.Scope
	for _, k := range kinds {
		for _, s := range sb.Scopes() {
			if s.Kind == k {
				out = append(out, s)
				break
			}
		}
	}
	if len(out) != len(kinds) {
		t.Fatalf("sandbox has no scope of each kind %v", kinds)
	}
	return out
}

func newExporter(t *testing.T, sb *sandbox.Server, st export.Store, version string, o export.Options) *export.Exporter {
	t.Helper()
	client, err := consumption.NewClient(mgmt.StaticToken(sb.Token()), &consumption.Options{
		Endpoint: sb.URL(), APIVersion: version,
		ClientOptions: policy.ClientOptions{Retry: policy.RetryOptions{RetryDelay: 10 * time.Millisecond, MaxRetryDelay: 2 * time.Second, MaxRetries: 3}},
	})
	if err != nil {
		t.Fatal(err)
	}
	// No $expand: the records exactly as the ground truth's Hash covers them.
	src := &export.UsageDetails{Client: client, Version: version, Expand: consumption.ExpandNone}
	o.Now = func() time.Time { return sandboxNow }
	return export.New(st, func(scope.Scope) (export.Source, error) { return src, nil }, &o)
}

type stores struct {
	name string
	open func(t *testing.T) export.Store
}

var allStores = []stores{
	{"local", func(t *testing.T) export.Store {
		st, err := store.NewLocal(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return st
	}},
	{"azurite", func(t *testing.T) export.Store {
		az := azuritetest.Start(t)
		name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-", "=", "-").Replace(t.Name()))
		if len(name) > 50 {
			name = name[len(name)-50:]
		}
		st, err := store.NewBlob(context.Background(), &store.BlobOptions{
			ConnectionString: az.ConnectionString(), Container: "t" + strings.Trim(name, "-") + fmt.Sprint(time.Now().UnixNano()%100000),
		})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}},
}

// partitionRecords reads the live manifest and every part of p, returning the manifest and the
// order-independent hash of its lines (the sandbox's Truth.Hash definition).
func partitionRecords(t *testing.T, st export.Store, e *export.Exporter, p export.Partition) (*manifest.Manifest, int, string) {
	t.Helper()
	ctx := context.Background()
	rc, _, err := st.Get(ctx, e.ManifestName(p))
	if err != nil {
		t.Fatalf("%s: reading manifest: %v", p.RelPath(), err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if err := schemas.Validate(schemas.Manifest, b); err != nil {
		t.Errorf("manifest does not match its schema: %v", err)
	}
	m, err := manifest.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	var sums []string
	for _, bl := range m.Blobs {
		rc, _, err := st.Get(ctx, bl.BlobName)
		if err != nil {
			t.Fatalf("part %s: %v", bl.BlobName, err)
		}
		zr, err := gzip.NewReader(rc)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(zr)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			sums = append(sums, sandbox.RecordDigest(sc.Bytes()))
		}
		rc.Close()
	}
	return m, len(sums), sandbox.HashDigests(sums)
}

func costField(m *manifest.Manifest) map[string]string {
	for _, f := range []string{"cost", "costInBillingCurrency", "pretaxCost"} {
		if v, ok := m.Totals[f]; ok {
			return v
		}
	}
	return map[string]string{}
}

// TestSandboxExportsEqualGroundTruth exports several scopes × periods × API versions to the
// local store and to Azurite and checks every partition against the sandbox's ground truth:
// row count, per-currency sums and the hash of the record set. A second run replaces without
// duplicates.
func TestSandboxExportsEqualGroundTruth(t *testing.T) {
	sb := newSandbox(t, nil)
	versions := []struct {
		version string
		kinds   []scope.Kind
	}{
		{"2024-08-01", []scope.Kind{scope.BillingAccount, scope.Department, scope.BillingProfile, scope.InvoiceSection}},
		{"2019-10-01", []scope.Kind{scope.EnrollmentAccount, scope.MCABillingAccount}},
		{"2018-06-30", []scope.Kind{scope.Subscription, scope.ManagementGroup}},
	}
	periods := []period.Period{period.Of(sandboxNow).Add(-1), period.Of(sandboxNow)}
	for _, sto := range allStores {
		for _, v := range versions {
			t.Run(sto.name+"/"+v.version, func(t *testing.T) {
				st := sto.open(t)
				e := newExporter(t, sb, st, v.version, export.Options{PartDays: 7})
				var parts []export.Partition
				for _, sc := range pickScopes(t, sb, v.kinds...) {
					for _, p := range periods {
						parts = append(parts, export.Partition{Scope: sc, Period: p, Metric: "actualcost"})
					}
				}
				for run := 1; run <= 2; run++ {
					sum, err := e.Run(context.Background(), parts)
					if err != nil {
						t.Fatal(err)
					}
					for i, p := range parts {
						r := sum.Partitions[i]
						if r.Status != export.StatusCommitted {
							t.Fatalf("run %d %s: %s %s", run, p.RelPath(), r.Status, r.Error)
						}
						truth, err := sb.GroundTruthVersion(p.Scope, p.Period, string(p.Metric), v.version)
						if err != nil {
							t.Fatal(err)
						}
						m, n, hash := partitionRecords(t, st, e, p)
						if n != truth.Rows || m.DataRowCount != int64(truth.Rows) {
							t.Errorf("run %d %s: %d lines, manifest %d, ground truth %d", run, p.RelPath(), n, m.DataRowCount, truth.Rows)
						}
						if hash != truth.Hash {
							t.Errorf("run %d %s: record set hash differs from the ground truth", run, p.RelPath())
						}
						got := costField(m)
						if len(got) != len(truth.Sums) {
							t.Errorf("run %d %s: currencies %v, want %v", run, p.RelPath(), got, truth.Sums)
						}
						for cur, want := range truth.Sums {
							if got[cur] != want {
								t.Errorf("run %d %s: %s total %s, want %s", run, p.RelPath(), cur, got[cur], want)
							}
						}
						if truth.USDSum != "" && m.Totals["costInUSD"]["USD"] != truth.USDSum {
							t.Errorf("run %d %s: costInUSD %s, want %s", run, p.RelPath(), m.Totals["costInUSD"]["USD"], truth.USDSum)
						}
						wantStatus := period.Final
						if p.Period == period.Of(sandboxNow) {
							wantStatus = period.Open
						}
						if m.PeriodStatus != wantStatus {
							t.Errorf("%s: periodStatus %s, want %s", p.RelPath(), m.PeriodStatus, wantStatus)
						}
						if rep, err := verify.Partition(context.Background(), st, e.ManifestName(p)); err != nil || !rep.OK() {
							t.Errorf("verify %s: %v %v", p.RelPath(), err, rep)
						}
					}
				}
			})
		}
	}
}

// TestFailedRunLeavesPartitionIntact breaks the API mid-export (connection resets on every
// page) and checks that the live partition is exactly the previous export.
func TestFailedRunLeavesPartitionIntact(t *testing.T) {
	for _, sto := range allStores {
		t.Run(sto.name, func(t *testing.T) {
			sb := newSandbox(t, &sandbox.Options{PageSize: 10})
			st := sto.open(t)
			e := newExporter(t, sb, st, "2024-08-01", export.Options{PartDays: 1})
			sc := pickScopes(t, sb, scope.Department)[0]
			p := export.Partition{Scope: sc, Period: period.Of(sandboxNow).Add(-1), Metric: "actualcost"}
			if sum, _ := e.Run(context.Background(), []export.Partition{p}); sum.Partitions[0].Status != export.StatusCommitted {
				t.Fatalf("first run: %+v", sum.Partitions[0])
			}
			before, _, beforeHash := partitionRecords(t, st, e, p)
			sb.Faults().Rate(sandbox.ResetMidBody, 0.3)
			sum, _ := e.Run(context.Background(), []export.Partition{p})
			sb.Faults().Clear()
			if r := sum.Partitions[0]; r.Status != export.StatusFailed {
				t.Fatalf("run with resets: status %s, want failed", r.Status)
			}
			after, _, afterHash := partitionRecords(t, st, e, p)
			if after.RunInfo.RunID != before.RunInfo.RunID || afterHash != beforeHash {
				t.Fatal("the failed run changed the live partition")
			}
			if rep, err := verify.Partition(context.Background(), st, e.ManifestName(p)); err != nil || !rep.OK() {
				t.Fatalf("previous partition damaged: %v %v", err, rep)
			}
			// The next run resumes and ends exactly at the ground truth.
			sum, _ = e.Run(context.Background(), []export.Partition{p})
			if r := sum.Partitions[0]; r.Status != export.StatusCommitted || !r.Resumed {
				t.Fatalf("next run: status %s resumed %v (%s)", r.Status, r.Resumed, r.Error)
			}
			truth, _ := sb.GroundTruth(p.Scope, p.Period, string(p.Metric))
			if _, n, hash := partitionRecords(t, st, e, p); n != truth.Rows || hash != truth.Hash {
				t.Fatalf("after resume: %d rows (want %d), hash match %v", n, truth.Rows, hash == truth.Hash)
			}
		})
	}
}

// TestCostDetailsSourceMatchesUsageDetails exports the same partitions through both sources:
// each equals the ground truth, and the two agree on rows and per-currency sums. Failure states
// of a report leave the previous partition intact.
func TestCostDetailsSourceMatchesUsageDetails(t *testing.T) {
	sb := newSandbox(t, &sandbox.Options{PollInterval: 10 * time.Millisecond, PollsBeforeDone: 2, RowsPerBlob: 500})
	st, err := store.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cd, err := costdetails.NewClient(mgmt.StaticToken(sb.Token()), &costdetails.Options{
		Endpoint: sb.URL(), PollInterval: 10 * time.Millisecond, Now: func() time.Time { return sandboxNow },
	})
	if err != nil {
		t.Fatal(err)
	}
	usage := newExporter(t, sb, st, "2024-08-01", export.Options{Prefix: "ud"})
	cost := export.New(st, func(scope.Scope) (export.Source, error) { return &export.CostDetails{Client: cd}, nil },
		&export.Options{Prefix: "cd", Now: func() time.Time { return sandboxNow }})
	var parts []export.Partition
	for _, sc := range pickScopes(t, sb, scope.BillingAccount, scope.Department, scope.BillingProfile, scope.Customer) {
		for _, m := range []string{"actualcost", "amortizedcost"} {
			parts = append(parts, export.Partition{Scope: sc, Period: period.Of(sandboxNow).Add(-1), Metric: metric.Metric(m)})
		}
	}
	ctx := context.Background()
	for _, e := range []*export.Exporter{usage, cost} {
		sum, err := e.Run(ctx, parts)
		if err != nil || sum.Failed() > 0 {
			t.Fatalf("export: %v %v", err, sum.Err())
		}
	}
	for _, p := range parts {
		truth, _ := sb.GroundTruth(p.Scope, p.Period, string(p.Metric))
		mu, nu, _ := partitionRecords(t, st, usage, p)
		mc, nc, _ := partitionRecords(t, st, cost, p)
		if mc.Source != manifest.SourceCostDetails || mu.Source != manifest.SourceUsageDetails {
			t.Errorf("%s: sources %s/%s", p.RelPath(), mu.Source, mc.Source)
		}
		if nu != truth.Rows || nc != truth.Rows {
			t.Errorf("%s: usageDetails %d rows, costDetails %d rows, ground truth %d", p.RelPath(), nu, nc, truth.Rows)
		}
		cu, cc := costField(mu), costField(mc)
		for cur, want := range truth.Sums {
			if cu[cur] != want || cc[cur] != want {
				t.Errorf("%s %s: usageDetails %s, costDetails %s, ground truth %s", p.RelPath(), cur, cu[cur], cc[cur], want)
			}
		}
		if rep, err := verify.Partition(ctx, st, cost.ManifestName(p)); err != nil || !rep.OK() {
			t.Errorf("verify %s: %v %v", p.RelPath(), err, rep)
		}
	}
	// Failure states: the previous partition stays as it was, with a clear error.
	p := parts[0]
	before, _, beforeHash := partitionRecords(t, st, cost, p)
	for _, f := range []sandbox.Fault{sandbox.ReportFailed, sandbox.ReportExpired} {
		sb.Faults().Add(sandbox.Rule{Fault: f, Count: 100})
		sum, _ := cost.Run(ctx, []export.Partition{p})
		sb.Faults().Clear()
		r := sum.Partitions[0]
		if r.Status != export.StatusFailed || r.Error == "" {
			t.Errorf("%s: status %s error %q, want failed with a reason", f, r.Status, r.Error)
		}
		t.Logf("%s: %s", f, r.Error)
		after, _, afterHash := partitionRecords(t, st, cost, p)
		if after.RunInfo.RunID != before.RunInfo.RunID || afterHash != beforeHash {
			t.Errorf("%s: the failed run changed the live partition", f)
		}
	}
	// A report that suddenly has no data for a final period is held by the drop guard.
	sb.Faults().Add(sandbox.Rule{Fault: sandbox.ReportNoData, Count: 100})
	sum, _ := cost.Run(ctx, []export.Partition{p})
	sb.Faults().Clear()
	if r := sum.Partitions[0]; r.Status != export.StatusHeld {
		t.Errorf("NoDataFound on a final period: status %s (%s), want held", r.Status, r.Error)
	}
	if after, _, afterHash := partitionRecords(t, st, cost, p); after.RunInfo.RunID != before.RunInfo.RunID || afterHash != beforeHash {
		t.Error("NoDataFound: the held run changed the live partition")
	}
}

// TestPlanCallsAtTheFloor exports a department month and an MCA billing profile month with date
// ranges honoured and ignored: each partition costs at most ⌈rows/1000⌉ + 1 listing calls, and
// equals the ground truth. A CSP customer, whose date range the service answers with the current
// period, fails naming the dates received instead of committing an empty partition.
func TestPlanCallsAtTheFloor(t *testing.T) {
	prev := period.Of(sandboxNow).Add(-1)
	for _, ignore := range []bool{false, true} {
		t.Run(fmt.Sprintf("ignoreDateFilter=%v", ignore), func(t *testing.T) {
			sb := newSandbox(t, &sandbox.Options{RecordsPerDay: 20, IgnoreDateFilter: ignore})
			st, err := store.NewLocal(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			e := newExporter(t, sb, st, "2024-08-01", export.Options{})
			for _, sc := range pickScopes(t, sb, scope.Department, scope.BillingProfile) {
				p := export.Partition{Scope: sc, Period: prev, Metric: "actualcost"}
				before := sb.Stats().Requests
				sum, err := e.Run(context.Background(), []export.Partition{p})
				if err != nil {
					t.Fatal(err)
				}
				r := sum.Partitions[0]
				calls := sb.Stats().Requests - before
				truth, _ := sb.GroundTruth(sc, prev, "actualcost")
				floor := int64((truth.Rows+999)/1000) + 1
				if r.Status != export.StatusCommitted || r.Rows != int64(truth.Rows) {
					t.Fatalf("%s: %s rows %d (%s), want committed %d", sc.Kind, r.Status, r.Rows, r.Error, truth.Rows)
				}
				if calls > floor || r.Parts != prev.Days() {
					t.Errorf("%s: %d calls for %d rows in %d parts, want at most %d calls and %d day parts", sc.Kind, calls, truth.Rows, r.Parts, floor, prev.Days())
				}
				if _, _, hash := partitionRecords(t, st, e, p); hash != truth.Hash {
					t.Errorf("%s: record set differs from the ground truth", sc.Kind)
				}
			}
			cust := pickScopes(t, sb, scope.Customer)[0]
			sum, _ := e.Run(context.Background(), []export.Partition{{Scope: cust, Period: prev, Metric: "actualcost"}})
			r := sum.Partitions[0]
			if !ignore {
				if r.Status != export.StatusCommitted {
					t.Errorf("customer: %s %s", r.Status, r.Error)
				}
				return
			}
			cur := period.Of(sandboxNow)
			want := fmt.Sprintf("usage dates received %s..%s", cur.Start().Format(time.DateOnly), sandboxNow.Format(time.DateOnly))
			if r.Status != export.StatusFailed || !errors.Is(r.Err, export.ErrNothingBelongs) || !strings.Contains(r.Error, want) {
				t.Errorf("customer answered with the current period: %s %q, want failed with %q", r.Status, r.Error, want)
			}
		})
	}
}

// TestPayAsYouGoPeriods exports the pay-as-you-go subscriptions' billing periods: each partition
// is the subscription's own period (Billing Periods API), named like 202610-1, listed by date
// range (the billing-period path is refused for Web Direct on 2019-10-01 and later), equal to the
// ground truth of those days, with status from the period's real end.
func TestPayAsYouGoPeriods(t *testing.T) {
	sb := newSandbox(t, &sandbox.Options{RecordsPerDay: 5})
	st, err := store.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := newExporter(t, sb, st, "2024-08-01", export.Options{})
	var payg []scope.Scope
	for _, sc := range sb.Scopes() {
		if sc.Kind != scope.Subscription {
			continue
		}
		if _, err := sb.BillingPeriod(sc, "202610-1"); err == nil {
			payg = append(payg, sc)
		}
	}
	if len(payg) != len(sandbox.PAYGAnchorDays) {
		t.Fatalf("%d pay-as-you-go subscriptions, want %d", len(payg), len(sandbox.PAYGAnchorDays))
	}
	sep, oct := period.Period{Year: 2026, Month: time.September}, period.Period{Year: 2026, Month: time.October}
	octNamed, _ := period.Parse("202610-1")
	var parts []export.Partition
	for _, sc := range payg {
		for _, p := range []period.Period{sep, oct} {
			parts = append(parts, export.Partition{Scope: sc, Period: p, Metric: "actualcost"})
		}
	}
	// sandboxNow is 14 Oct 2026: 202610-1 of the subscription anchored on the 5th ran 5 Sep –
	// 4 Oct (final since the 9th); of the one anchored on the 24th, 24 Sep – 23 Oct (open).
	wantStatus := map[string]period.Status{"0/202609-1": "final", "0/202610-1": "final", "1/202609-1": "final", "1/202610-1": "open"}
	before := sb.Stats().Requests
	sum, err := e.Run(context.Background(), parts)
	if err != nil {
		t.Fatal(err)
	}
	var rows int64
	for i, r := range sum.Partitions {
		sc := parts[i].Scope
		if r.Status != export.StatusCommitted {
			t.Fatalf("%s %s: %s %s", sc, parts[i].Period, r.Status, r.Error)
		}
		bp, err := sb.BillingPeriod(sc, r.Period)
		if err != nil {
			t.Fatalf("result period %q: %v", r.Period, err)
		}
		truth, err := sb.GroundTruth(sc, bp, "actualcost")
		if err != nil {
			t.Fatal(err)
		}
		p := r.Partition
		if !strings.HasSuffix(p.RelPath(), "billingPeriod="+bp.String()) {
			t.Errorf("folder %s, want billingPeriod=%s", p.RelPath(), bp)
		}
		m, n, hash := partitionRecords(t, st, e, p)
		if n != truth.Rows || hash != truth.Hash {
			t.Errorf("%s: %d lines, want the ground truth's %d (hash equal: %v)", p.RelPath(), n, truth.Rows, hash == truth.Hash)
		}
		key := fmt.Sprintf("%d/%s", i/2, bp)
		if m.PeriodStatus != wantStatus[key] || m.BillingPeriod != bp.String() ||
			m.RunInfo.StartDate != bp.Start().Format(time.DateOnly) || m.RunInfo.EndDate != bp.End().AddDate(0, 0, -1).Format(time.DateOnly) {
			t.Errorf("%s: manifest period %s %s..%s status %s, want %s %s..%s %s", key, m.BillingPeriod, m.RunInfo.StartDate, m.RunInfo.EndDate,
				m.PeriodStatus, bp, bp.Start().Format(time.DateOnly), bp.End().AddDate(0, 0, -1).Format(time.DateOnly), wantStatus[key])
		}
		if back, err := period.Parse(strings.TrimPrefix(path.Base(p.RelPath()), "billingPeriod=")); err != nil || back.String() != bp.String() {
			t.Errorf("folder name %s does not parse back: %v", p.RelPath(), err)
		}
		rows += r.Rows
	}
	// One billing-periods call per subscription, then at most ⌈rows/1000⌉ + 1 per partition.
	if calls := sb.Stats().Requests - before; calls > int64(len(payg))+int64(len(parts))*2 || sb.Stats().ByStatus[400] > 0 {
		t.Errorf("%d calls (%d refused) for %d rows in %d partitions", calls, sb.Stats().ByStatus[400], rows, len(parts))
	}
	// The suffixed name selects the same partition: it is replaced, not duplicated.
	sum, err = e.Run(context.Background(), []export.Partition{{Scope: payg[1], Period: octNamed, Metric: "actualcost"}})
	if err != nil || sum.Partitions[0].Status != export.StatusCommitted || sum.Partitions[0].Period != "202610-1" {
		t.Fatalf("export of 202610-1: %v %+v", err, sum.Partitions[0])
	}
	if m, _, _ := partitionRecords(t, st, e, sum.Partitions[0].Partition); m.Previous == nil || m.Previous.Delta.DataRowCount != 0 {
		t.Errorf("re-export by the suffixed name: previous %+v, want a replacement with delta 0", m.Previous)
	}
}
