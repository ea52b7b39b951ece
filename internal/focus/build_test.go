package focus

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/klauspost/compress/gzip"

	"github.com/usage-export/usage-export/docs/schemas"
	"github.com/usage-export/usage-export/internal/consumption"
	"github.com/usage-export/usage-export/internal/costdetails"
	"github.com/usage-export/usage-export/internal/decimal"
	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/metric"
	"github.com/usage-export/usage-export/internal/mgmt"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/sandbox"
	"github.com/usage-export/usage-export/internal/sandbox/sandboxtest"
	"github.com/usage-export/usage-export/internal/scope"
	"github.com/usage-export/usage-export/internal/store"
)

var testNow = time.Date(2026, 10, 14, 9, 0, 0, 0, time.UTC)

// world is a sandbox, a local store with both metrics of an EA enrollment and an MCA billing
// profile exported for three closed periods, and the FOCUS builder hooked after the run.
type world struct {
	sb      *sandbox.Server
	st      *store.Local
	dir     string
	e       *export.Exporter
	b       *Builder
	scopes  []scope.Scope
	periods []period.Period
}

func newWorld(t *testing.T) *world { return newWorldFrom(t, "usageDetails") }

// newWorldFrom is newWorld with the raw partitions read from source: usageDetails, costDetails,
// or mixed (actual cost through usageDetails, amortized cost through Cost Details reports).
func newWorldFrom(t *testing.T, source string) *world {
	t.Helper()
	sb := sandboxtest.Start(t, &sandbox.Options{RecordsPerDay: 3, PollInterval: 10 * time.Millisecond, Now: func() time.Time { return testNow }})
	w := &world{sb: sb, dir: t.TempDir()}
	for _, s := range sb.Scopes() {
		// Both EA enrollments (USD, EUR) and both MCA billing profiles (USD, EUR).
		if s.Kind == scope.BillingAccount && s.Channel() == scope.Legacy || s.Kind == scope.BillingProfile {
			w.scopes = append(w.scopes, s)
		}
	}
	if len(w.scopes) != 4 {
		t.Fatalf("scopes %v", w.scopes)
	}
	var err error
	w.st, err = store.NewLocal(w.dir)
	if err != nil {
		t.Fatal(err)
	}
	client, err := consumption.NewClient(mgmt.StaticToken(sb.Token()), &consumption.Options{
		Endpoint: sb.URL(), ClientOptions: policy.ClientOptions{Retry: policy.RetryOptions{RetryDelay: 10 * time.Millisecond}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ud := &export.UsageDetails{Client: client, Version: client.APIVersion()}
	cd, err := costdetails.NewClient(mgmt.StaticToken(sb.Token()), &costdetails.Options{Endpoint: sb.URL(),
		ClientOptions: policy.ClientOptions{Retry: policy.RetryOptions{RetryDelay: 10 * time.Millisecond}}, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	pick := func(p export.Partition, _ *manifest.Manifest) (export.Source, string, error) {
		if source == "costDetails" || (source == "mixed" && p.Metric == metric.AmortizedCost) {
			return &export.CostDetails{Client: cd}, "test", nil
		}
		return ud, "test", nil
	}
	w.b = New(w.st, &Options{Prefix: "usage", Now: func() time.Time { return testNow }})
	w.e = export.New(w.st, nil,
		&export.Options{Pick: pick, Prefix: "usage", PartDays: 7, Now: func() time.Time { return testNow }, AfterRun: w.b.AfterRun,
			PartitionConcurrency: 1}) // one partition at a time: the local store's directory race (issue 12) is not this test's subject
	cur := period.Of(testNow)
	w.periods = []period.Period{cur.Add(-3), cur.Add(-2), cur.Add(-1)}
	return w
}

func (w *world) partitions(metrics ...string) []export.Partition {
	var parts []export.Partition
	for _, sc := range w.scopes {
		for _, p := range w.periods {
			for _, m := range metrics {
				parts = append(parts, export.Partition{Scope: sc, Period: p, Metric: metric.Metric(m)})
			}
		}
	}
	return parts
}

func (w *world) run(t *testing.T, metrics ...string) *export.Summary {
	t.Helper()
	sum, err := w.e.Run(context.Background(), w.partitions(metrics...))
	if err != nil || sum.Failed() > 0 {
		t.Fatalf("export: %v %v", err, sum.Err())
	}
	return sum
}

func (w *world) manifest(t *testing.T, sc scope.Scope, p period.Period) *Manifest {
	t.Helper()
	b, err := w.b.readBlob(context.Background(), w.b.ManifestName(sc, p))
	if err != nil || b == nil {
		t.Fatalf("focus manifest %s %s: %v (exists: %v)", sc, p, err, b != nil)
	}
	if err := schemas.Validate(schemas.FocusManifest, b); err != nil {
		t.Errorf("focus manifest %s %s: %v", sc, p, err)
	}
	m, err := ParseManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// readRows decodes every line of the FOCUS partition.
func (w *world) readRows(t *testing.T, m *Manifest) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, bl := range m.Blobs {
		rc, _, err := w.st.Get(context.Background(), bl.BlobName)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(rc)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(zr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			d := json.NewDecoder(strings.NewReader(sc.Text()))
			d.UseNumber()
			var row map[string]any
			if err := d.Decode(&row); err != nil {
				t.Fatal(err)
			}
			out = append(out, row)
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		rc.Close()
	}
	return out
}

func sameDec(a, b string) bool {
	x, err1 := decimal.Parse(orZero(a))
	y, err2 := decimal.Parse(orZero(b))
	return err1 == nil && err2 == nil && x.Rat().Cmp(y.Rat()) == 0
}

func val(row map[string]any, k string) string {
	switch v := row[k].(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	}
	return ""
}

// TestBuildInvariants exports an EA enrollment and an MCA billing profile over three periods,
// lets the hook build FOCUS, and checks every invariant of the issue against the sandbox's
// ground truth and the written lines. Run with -v for the figures.
func TestBuildInvariants(t *testing.T) {
	for _, source := range []string{"usageDetails", "mixed", "costDetails"} {
		t.Run(source, func(t *testing.T) { testBuildInvariants(t, source) })
	}
}

func testBuildInvariants(t *testing.T, source string) {
	w := newWorldFrom(t, source)
	sum := w.run(t, string(metric.ActualCost), string(metric.AmortizedCost))
	built := 0
	for _, r := range sum.Derived {
		if r.Status != StatusCommitted {
			t.Errorf("focus %s %s: %s %s", r.Scope, r.Period, r.Status, r.Error)
		}
		built++
	}
	if built != len(w.scopes)*len(w.periods) {
		t.Fatalf("hook built %d focus partitions, want %d", built, len(w.scopes)*len(w.periods))
	}
	spec, err := LoadSpec()
	if err != nil {
		t.Fatal(err)
	}
	ck, err := NewChecker(spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("columns checked against the FOCUS %s table (%d): %s", spec.FocusVersion, len(ck.Checked()), strings.Join(ck.Checked(), " "))
	// per commitment order and currency over the three periods: used, unused, purchases
	type ck3 struct{ used, unused, purchases decimal.Sum }
	commit := map[string]*ck3{}
	chargeKinds := map[string]int{}
	for _, sc := range w.scopes {
		for _, p := range w.periods {
			m := w.manifest(t, sc, p)
			actual, err := w.sb.GroundTruth(sc, p, string(metric.ActualCost))
			if err != nil {
				t.Fatal(err)
			}
			amort, err := w.sb.GroundTruth(sc, p, string(metric.AmortizedCost))
			if err != nil {
				t.Fatal(err)
			}
			// Σ BilledCost = actual total, Σ EffectiveCost = amortized total, per currency.
			for cur, want := range actual.Sums {
				if got := m.Totals["BilledCost"][cur]; !sameDec(got, want) {
					t.Errorf("%s %s %s: Σ BilledCost %s, actual ground truth %s", sc.Kind, p, cur, got, want)
				}
			}
			for cur, want := range amort.Sums {
				if got := m.Totals["EffectiveCost"][cur]; !sameDec(got, want) {
					t.Errorf("%s %s %s: Σ EffectiveCost %s, amortized ground truth %s", sc.Kind, p, cur, got, want)
				}
			}
			for _, c := range m.Checks {
				if !c.OK {
					t.Errorf("%s %s: check %q failed: %s", sc.Kind, p, c.Name, c.Detail)
				}
			}
			rows := w.readRows(t, m)
			if int64(len(rows)) != m.DataRowCount {
				t.Errorf("%s %s: %d lines, manifest says %d", sc.Kind, p, len(rows), m.DataRowCount)
			}
			if m.RowsFrom[metric.AmortizedCost] != int64(amort.Rows) {
				t.Errorf("%s %s: %d rows from amortized, it has %d", sc.Kind, p, m.RowsFrom[metric.AmortizedCost], amort.Rows)
			}
			if m.DataRowCount < int64(max(actual.Rows, amort.Rows)) || m.DataRowCount >= int64(actual.Rows+amort.Rows) {
				t.Errorf("%s %s: %d FOCUS rows, want at least as many as either input (%d, %d) and fewer than their sum",
					sc.Kind, p, m.DataRowCount, actual.Rows, amort.Rows)
			}
			billed, effective := map[string]*decimal.Sum{}, map[string]*decimal.Sum{}
			for _, row := range rows {
				// Every FOCUS column is present in every line.
				for _, c := range Columns {
					if _, ok := row[c]; !ok {
						t.Fatalf("line without column %s: %v", c, row)
					}
				}
				cur := val(row, "BillingCurrency")
				for _, x := range []struct {
					m map[string]*decimal.Sum
					k string
				}{{billed, "BilledCost"}, {effective, "EffectiveCost"}} {
					if x.m[cur] == nil {
						x.m[cur] = &decimal.Sum{}
					}
					if err := x.m[cur].AddString(val(row, x.k)); err != nil {
						t.Fatalf("%s %q: %v", x.k, val(row, x.k), err)
					}
				}
				chargeKinds[fmt.Sprintf("%s/%s/%s/%s", val(row, "ChargeCategory"), val(row, "ChargeClass"),
					val(row, "CommitmentDiscountStatus"), val(row, "CommitmentDiscountType"))]++
				order := CommitmentOrder(val(row, "CommitmentDiscountId"))
				if order == "" {
					continue
				}
				key := order + " " + cur
				if commit[key] == nil {
					commit[key] = &ck3{}
				}
				switch {
				case val(row, "CommitmentDiscountStatus") == "Used":
					_ = commit[key].used.AddString(val(row, "EffectiveCost"))
				case val(row, "CommitmentDiscountStatus") == "Unused":
					_ = commit[key].unused.AddString(val(row, "EffectiveCost"))
				case val(row, "ChargeCategory") == "Purchase":
					_ = commit[key].purchases.AddString(val(row, "BilledCost"))
				}
			}
			for cur, s := range billed {
				if !sameDec(s.String(), m.Totals["BilledCost"][cur]) {
					t.Errorf("%s %s %s: lines sum BilledCost %s, manifest %s", sc.Kind, p, cur, s.String(), m.Totals["BilledCost"][cur])
				}
			}
			t.Logf("%-58s %s  actual %5d rows  amortized %5d rows  focus %5d rows (%d amortized + %d actual)  BilledCost %v = actual %v  EffectiveCost %v = amortized %v",
				sc.Folder(), p, actual.Rows, amort.Rows, m.DataRowCount, m.RowsFrom[metric.AmortizedCost], m.RowsFrom[metric.ActualCost],
				m.Totals["BilledCost"], actual.Sums, m.Totals["EffectiveCost"], amort.Sums)
		}
	}
	// Per commitment, over its term (the sandbox pays each quarter's commitment on its first
	// day; the three periods are one quarter): Σ EffectiveCost of Used + Unused = Σ BilledCost of
	// its purchases and refunds.
	keys := make([]string, 0, len(commit))
	for k := range commit {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) == 0 {
		t.Fatal("no commitment rows")
	}
	for _, k := range keys {
		c := commit[k]
		total := c.used
		total.AddSum(c.unused)
		if total.Rat().Cmp(c.purchases.Rat()) != 0 {
			t.Errorf("commitment %s: used %s + unused %s = %s, purchases %s", k, c.used.String(), c.unused.String(), total.String(), c.purchases.String())
		}
		t.Logf("commitment %s: used %s + unused %s = purchases %s", k, c.used.String(), c.unused.String(), c.purchases.String())
	}
	kinds := make([]string, 0, len(chargeKinds))
	for k, n := range chargeKinds {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(kinds)
	t.Logf("ChargeCategory/ChargeClass/CommitmentDiscountStatus/CommitmentDiscountType: %s", strings.Join(kinds, " "))
	for _, want := range []string{"Purchase/Correction//Reservation", "Usage//Unused/Savings Plan", "Usage//Unused/Reservation",
		"Usage//Used/Savings Plan", "Usage//Used/Reservation", "Purchase///Savings Plan", "Purchase///Reservation", "Purchase///", "Adjustment///"} {
		if chargeKinds[want] == 0 {
			t.Errorf("no %s rows", want)
		}
	}
}

// TestRebuild: an unchanged pair is not rebuilt; a re-committed input is; a pair that is not
// complete is waited for.
func TestRebuild(t *testing.T) {
	w := newWorld(t)
	w.scopes, w.periods = w.scopes[:1], w.periods[:1]
	sc, p := w.scopes[0], w.periods[0]
	sum := w.run(t, string(metric.ActualCost))
	if got := w.b.Build(context.Background(), sc, p, false); got.Status != StatusWaiting {
		t.Fatalf("only actualcost committed: %s %s, want waiting", got.Status, got.Reason)
	}
	if len(sum.Derived) != 1 || sum.Derived[0].Status != StatusWaiting {
		t.Errorf("hook with one input: %+v, want one waiting", sum.Derived)
	}
	w.run(t, string(metric.AmortizedCost))
	first := w.manifest(t, sc, p)
	if got := w.b.Build(context.Background(), sc, p, false); got.Status != StatusUpToDate {
		t.Fatalf("same inputs: %s, want upToDate", got.Status)
	}
	w.run(t, string(metric.ActualCost))
	second := w.manifest(t, sc, p)
	if second.RunInfo.RunID == first.RunInfo.RunID || second.Inputs[metric.ActualCost].RunID == first.Inputs[metric.ActualCost].RunID {
		t.Errorf("re-committed actualcost did not rebuild: runs %s → %s", first.RunInfo.RunID, second.RunInfo.RunID)
	}
	if second.Inputs[metric.AmortizedCost].RunID != first.Inputs[metric.AmortizedCost].RunID {
		t.Errorf("amortized input changed: %+v → %+v", first.Inputs[metric.AmortizedCost], second.Inputs[metric.AmortizedCost])
	}
	if second.Totals["BilledCost"]["USD"] != first.Totals["BilledCost"]["USD"] {
		t.Errorf("rebuild changed totals: %v → %v", first.Totals, second.Totals)
	}
}

// changingStore re-commits the actualcost manifest (a different run id) the first time a part is
// read: the build must notice and publish nothing.
type changingStore struct {
	*store.Local
	manifest string
	done     atomic.Bool
}

func (c *changingStore) Get(ctx context.Context, name string) (io.ReadCloser, store.Props, error) {
	if strings.Contains(name, "/part-") && c.done.CompareAndSwap(false, true) {
		rc, _, err := c.Local.Get(ctx, c.manifest)
		if err != nil {
			return nil, store.Props{}, err
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		b = []byte(strings.Replace(string(b), `"runId": "`, `"runId": "x`, 1))
		if _, err := c.Local.Put(ctx, c.manifest, strings.NewReader(string(b)), nil); err != nil {
			return nil, store.Props{}, err
		}
	}
	return c.Local.Get(ctx, name)
}

func TestNeverFromAHalfCommittedPair(t *testing.T) {
	w := newWorld(t)
	w.scopes, w.periods = w.scopes[:1], w.periods[:1]
	sc, p := w.scopes[0], w.periods[0]
	w.run(t, string(metric.ActualCost), string(metric.AmortizedCost))
	before := w.manifest(t, sc, p)
	cs := &changingStore{Local: w.st, manifest: w.b.inputManifest(sc, p, metric.ActualCost)}
	b := New(cs, &Options{Prefix: "usage"})
	got := b.Build(context.Background(), sc, p, true)
	if got.Status != StatusFailed || !errors.Is(got.Err, ErrInputChanged) {
		t.Fatalf("input changed during the build: %s %v, want failed with ErrInputChanged", got.Status, got.Err)
	}
	after := w.manifest(t, sc, p)
	if after.RunInfo.RunID != before.RunInfo.RunID {
		t.Errorf("a failed build replaced the live partition")
	}
	var staged []string
	_ = w.st.List(context.Background(), "usage/_control/", func(it store.Item) error {
		staged = append(staged, path.Base(it.Name))
		return nil
	})
	for _, n := range staged {
		if strings.HasSuffix(n, ".staged") {
			t.Errorf("left a staged part behind: %v", staged)
		}
	}
}

// TestVerify: a built partition verifies clean; a changed part, an unlisted part and a
// re-committed input are each reported.
func TestVerify(t *testing.T) {
	w := newWorld(t)
	w.scopes, w.periods = w.scopes[:1], w.periods[:1]
	sc, p := w.scopes[0], w.periods[0]
	w.run(t, string(metric.ActualCost), string(metric.AmortizedCost))
	ctx := context.Background()
	name := w.b.ManifestName(sc, p)
	verifyNow := func() *Verification {
		t.Helper()
		b, err := w.b.readBlob(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		v, err := Verify(ctx, w.st, name, b)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	v := verifyNow()
	if len(v.Problems) != 0 || v.Rows == 0 || v.Blobs != 1 {
		t.Fatalf("fresh partition: %+v", v)
	}
	m := w.manifest(t, sc, p)
	t.Logf("verify: %d blob, %d rows, %d bytes, no problems", v.Blobs, v.Rows, v.Bytes)

	// An unlisted part.
	extra := path.Join(path.Dir(name), "part-20990101-20990101.jsonl.gz")
	if _, err := w.st.Put(ctx, extra, strings.NewReader("x"), nil); err != nil {
		t.Fatal(err)
	}
	if v := verifyNow(); !hasProblem(v, "not listed") {
		t.Errorf("unlisted part not reported: %v", v.Problems)
	}
	_ = w.st.Delete(ctx, extra)

	// A part whose content changed: one line's BilledCost altered.
	part := m.Blobs[0].BlobName
	rc, _, err := w.st.Get(ctx, part)
	if err != nil {
		t.Fatal(err)
	}
	zr, _ := gzip.NewReader(rc)
	body, _ := io.ReadAll(zr)
	rc.Close()
	changed := strings.Replace(string(body), `"BilledCost":0,`, `"BilledCost":1,`, 1)
	if changed == string(body) {
		t.Fatal("no zero BilledCost line to change")
	}
	var gz strings.Builder
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte(changed))
	_ = zw.Close()
	if _, err := w.st.Put(ctx, part, strings.NewReader(gz.String()), nil); err != nil {
		t.Fatal(err)
	}
	if v := verifyNow(); !hasProblem(v, "sha256") || !hasProblem(v, "BilledCost recomputed") {
		t.Errorf("changed part not reported: %v", v.Problems)
	}
	// Rebuilding (force) repairs it; then re-committing an input makes it stale.
	if r := w.b.Build(ctx, sc, p, true); r.Status != StatusCommitted {
		t.Fatalf("forced rebuild: %+v", r)
	}
	if v := verifyNow(); len(v.Problems) != 0 {
		t.Fatalf("rebuilt: %v", v.Problems)
	}
	raw, _ := w.b.readBlob(ctx, w.b.inputManifest(sc, p, metric.AmortizedCost))
	if _, err := w.st.Put(ctx, w.b.inputManifest(sc, p, metric.AmortizedCost), strings.NewReader(string(raw)+"\n"), nil); err != nil {
		t.Fatal(err)
	}
	if v := verifyNow(); !hasProblem(v, "re-committed") {
		t.Errorf("stale input not reported: %v", v.Problems)
	}
}

func hasProblem(v *Verification, s string) bool {
	for _, p := range v.Problems {
		if strings.Contains(p, s) {
			return true
		}
	}
	return false
}
