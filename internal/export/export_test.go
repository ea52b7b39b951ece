package export

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usage-export/usage-export/docs/schemas"
	"github.com/usage-export/usage-export/internal/consumption"
	"github.com/usage-export/usage-export/internal/decimal"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/scope"
	"github.com/usage-export/usage-export/internal/store"
	"github.com/usage-export/usage-export/internal/verify"
)

// fakeSource serves a deterministic set of records per day, optionally ignoring the date range
// (as the real API sometimes does), and fails on demand.
type fakeSource struct {
	perDay      int
	ignoreDates bool
	mu          sync.Mutex
	failOn      string // chunk key to fail after delivering some records
	fetched     map[string]int
	drop        bool // serve only half the days (for the drop guard)
}

func (f *fakeSource) Name() string       { return SourceUsageDetails }
func (f *fakeSource) APIVersion() string { return "2024-08-01" }

func (f *fakeSource) days(c Chunk) []time.Time {
	from, to := c.From, c.To
	if f.ignoreDates || c.ByPeriod {
		from, to = c.Period.Start(), c.Period.End().AddDate(0, 0, -1)
	}
	var out []time.Time
	for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
		if f.drop && d.Day() > 5 {
			continue
		}
		out = append(out, d)
	}
	return out
}

func fakeRecord(d time.Time, i int) string {
	cur := "USD"
	if i%3 == 0 {
		cur = "EUR"
	}
	return fmt.Sprintf(`{"id":"/x/%s-%d","name":"%s-%d","type":"Microsoft.Consumption/usageDetails","kind":"legacy","tags":null,`+
		`"properties":{"date":"%sT00:00:00.0000000Z","cost":0.%07d,"billingCurrency":"%s","subscriptionId":"sub-%d","additionalInfo":"{\"a\": 1}"}}`,
		d.Format("20060102"), i, d.Format("20060102"), i, d.Format("2006-01-02"), (d.Day()*1000+i)*13, cur, i%2)
}

func (f *fakeSource) Fetch(ctx context.Context, c Chunk, h consumption.Handler) error {
	f.mu.Lock()
	if f.fetched == nil {
		f.fetched = map[string]int{}
	}
	f.fetched[c.Key()]++
	fail := f.failOn == c.Key()
	f.mu.Unlock()
	n := 0
	for _, d := range f.days(c) {
		for i := 0; i < f.perDay; i++ {
			if fail && n == 2 {
				return errors.New("connection reset by peer (injected)")
			}
			if err := h.Record([]byte(fakeRecord(d, i))); err != nil {
				return err
			}
			n++
		}
	}
	return h.PageDone(consumption.Page{Index: 1, Records: n})
}

var (
	testScope = scope.MustParse("/providers/Microsoft.Billing/billingAccounts/8608480")
	feb2024   = period.Period{Year: 2024, Month: time.February}
	testNow   = time.Date(2024, 3, 3, 12, 0, 0, 0, time.UTC) // February is closing, March open
)

func newTestExporter(t *testing.T, st Store, src Source, o Options) *Exporter {
	t.Helper()
	o.Now = func() time.Time { return testNow }
	if o.Prefix == "" {
		o.Prefix = "usage"
	}
	return New(st, func(scope.Scope) (Source, error) { return src, nil }, &o)
}

// readLines returns every JSON line of the live partition (all parts).
func readLines(t *testing.T, dir string) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "part-*.jsonl.gz"))
	var out []string
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(fh)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		sc := bufio.NewScanner(zr)
		for sc.Scan() {
			out = append(out, sc.Text())
		}
		fh.Close()
	}
	sort.Strings(out)
	return out
}

func expected(days int, perDay int, ds func(int) bool) []string {
	var out []string
	for d := 1; d <= days; d++ {
		if ds != nil && !ds(d) {
			continue
		}
		for i := 0; i < perDay; i++ {
			out = append(out, fakeRecord(time.Date(2024, 2, d, 0, 0, 0, 0, time.UTC), i))
		}
	}
	sort.Strings(out)
	return out
}

func liveManifest(t *testing.T, st *store.Local, e *Exporter, p Partition) *manifest.Manifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(st.Dir(), e.ManifestName(p)))
	if err != nil {
		t.Fatalf("reading manifest: %v", err)
	}
	if err := schemas.Validate(schemas.Manifest, b); err != nil {
		t.Errorf("manifest does not match its published schema: %v", err)
	}
	m, err := manifest.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestExportExactAndReplace(t *testing.T) {
	for _, ignore := range []bool{false, true} {
		t.Run(fmt.Sprintf("ignoreDates=%v", ignore), func(t *testing.T) {
			st, err := store.NewLocal(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			src := &fakeSource{perDay: 4, ignoreDates: ignore}
			e := newTestExporter(t, st, src, Options{PartDays: 7})
			p := Partition{Scope: testScope, Period: feb2024, Metric: "actualcost"}
			ctx := context.Background()
			var first string
			for run := 0; run < 2; run++ {
				sum, err := e.Run(ctx, []Partition{p})
				if err != nil {
					t.Fatal(err)
				}
				r := sum.Partitions[0]
				if r.Status != StatusCommitted {
					t.Fatalf("run %d: status %s: %s", run, r.Status, r.Error)
				}
				dir := filepath.Join(st.Dir(), e.Dir(p))
				got, want := readLines(t, dir), expected(29, 4, nil)
				if strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Fatalf("run %d: %d lines, want %d exactly once each", run, len(got), len(want))
				}
				m := liveManifest(t, st, e, p)
				if m.DataRowCount != int64(len(want)) || m.BlobCount != 5 || m.PeriodStatus != "closing" {
					t.Errorf("manifest rows=%d blobs=%d status=%s, want %d 5 closing", m.DataRowCount, m.BlobCount, m.PeriodStatus, len(want))
				}
				var usd decimal.Sum
				for _, l := range want {
					var rec struct {
						Properties struct {
							Cost     json.Number `json:"cost"`
							Currency string      `json:"billingCurrency"`
						} `json:"properties"`
					}
					_ = json.Unmarshal([]byte(l), &rec)
					if rec.Properties.Currency == "USD" {
						_ = usd.AddString(rec.Properties.Cost.String())
					}
				}
				if m.Totals["cost"]["USD"] != usd.String() {
					t.Errorf("USD total %s, want %s", m.Totals["cost"]["USD"], usd.String())
				}
				rep, err := verify.Partition(ctx, st, e.ManifestName(p))
				if err != nil || !rep.OK() {
					t.Fatalf("verify: %v %v", err, rep.Problems)
				}
				if run == 0 {
					first = m.RunInfo.RunID
				} else if m.Previous == nil || m.Previous.RunID != first || m.Previous.Delta.DataRowCount != 0 {
					t.Errorf("change report: %+v, want previous run %s with delta 0", m.Previous, first)
				}
			}
			// Nothing left in the control tree but leases.
			var left []string
			_ = st.List(ctx, "usage/_control/", func(it store.Item) error {
				if !strings.Contains(it.Name, "/leases/") {
					left = append(left, it.Name)
				}
				return nil
			})
			if len(left) > 0 {
				t.Errorf("control tree not cleaned: %v", left)
			}
		})
	}
}

func TestFailureKeepsPreviousAndResumes(t *testing.T) {
	st, err := store.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p := Partition{Scope: testScope, Period: feb2024, Metric: "actualcost"}
	src := &fakeSource{perDay: 3}
	e := newTestExporter(t, st, src, Options{PartDays: 1, Concurrency: 1})
	if sum, _ := e.Run(ctx, []Partition{p}); sum.Partitions[0].Status != StatusCommitted {
		t.Fatalf("first run: %+v", sum.Partitions[0])
	}
	before := liveManifest(t, st, e, p)

	// The second run fails on day 20: nothing is published.
	src.failOn, src.fetched = "20240220-20240220", nil
	sum, _ := e.Run(ctx, []Partition{p})
	if r := sum.Partitions[0]; r.Status != StatusFailed || !strings.Contains(r.Error, "injected") {
		t.Fatalf("second run: status %s error %q, want failed with the cause", r.Status, r.Error)
	}
	after := liveManifest(t, st, e, p)
	if after.RunInfo.RunID != before.RunInfo.RunID {
		t.Fatalf("failed run replaced the manifest")
	}
	if rep, err := verify.Partition(ctx, st, e.ManifestName(p)); err != nil || !rep.OK() {
		t.Fatalf("previous export damaged: %v %v", err, rep)
	}

	// The third run continues: the days finished before the failure are not fetched again.
	src.failOn, src.fetched = "", nil
	sum, _ = e.Run(ctx, []Partition{p})
	r := sum.Partitions[0]
	if r.Status != StatusCommitted || !r.Resumed {
		t.Fatalf("third run: status %s resumed %v (%s)", r.Status, r.Resumed, r.Error)
	}
	if n := len(src.fetched); n >= 29 || n == 0 {
		t.Errorf("resumed run fetched %d chunks, want only the unfinished ones", n)
	}
	if src.fetched["20240201-20240201"] != 0 {
		t.Errorf("resumed run fetched day 1 again")
	}
	if got, want := readLines(t, filepath.Join(st.Dir(), e.Dir(p))), expected(29, 3, nil); len(got) != len(want) {
		t.Fatalf("after resume: %d lines, want %d", len(got), len(want))
	}
	m := liveManifest(t, st, e, p)
	if m.RunInfo.Resumed != 1 {
		t.Errorf("manifest runInfo.resumed = %d, want 1", m.RunInfo.Resumed)
	}
}

func TestDropGuardHolds(t *testing.T) {
	st, err := store.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p := Partition{Scope: testScope, Period: feb2024, Metric: "actualcost"}
	src := &fakeSource{perDay: 2}
	e := newTestExporter(t, st, src, Options{PartDays: 7})
	if sum, _ := e.Run(ctx, []Partition{p}); sum.Partitions[0].Status != StatusCommitted {
		t.Fatal("first run did not commit")
	}
	before := liveManifest(t, st, e, p)
	src.drop = true
	sum, _ := e.Run(ctx, []Partition{p})
	r := sum.Partitions[0]
	if r.Status != StatusHeld || !strings.Contains(r.Error, "row count dropped") {
		t.Fatalf("status %s error %q, want held for a row drop", r.Status, r.Error)
	}
	if after := liveManifest(t, st, e, p); after.RunInfo.RunID != before.RunInfo.RunID {
		t.Fatal("held run replaced the live export")
	}
	b, err := os.ReadFile(filepath.Join(st.Dir(), r.Manifest))
	if err != nil {
		t.Fatalf("held manifest: %v", err)
	}
	if err := schemas.Validate(schemas.Manifest, b); err != nil {
		t.Errorf("held manifest does not match its published schema: %v", err)
	}
	held, _ := manifest.Parse(b)
	if held.Status != manifest.StatusHeld || held.DataRowCount != 10 {
		t.Errorf("held manifest status %s rows %d, want held 10", held.Status, held.DataRowCount)
	}
	for _, bl := range held.Blobs {
		if _, err := os.Stat(filepath.Join(st.Dir(), bl.BlobName)); err != nil {
			t.Errorf("held part %s not kept aside: %v", bl.BlobName, err)
		}
	}
	// The operator can force it through.
	e2 := newTestExporter(t, st, src, Options{PartDays: 7, NoDropGuard: true})
	if sum, _ := e2.Run(ctx, []Partition{p}); sum.Partitions[0].Status != StatusCommitted {
		t.Fatalf("forced run: %+v", sum.Partitions[0])
	}
	if got := readLines(t, filepath.Join(st.Dir(), e.Dir(p))); len(got) != 10 {
		t.Errorf("after forced run: %d lines, want 10 (stale parts removed)", len(got))
	}
}

func TestBusyPartition(t *testing.T) {
	st, err := store.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p := Partition{Scope: testScope, Period: feb2024, Metric: "actualcost"}
	e := newTestExporter(t, st, &fakeSource{perDay: 1}, Options{})
	l, err := st.AcquireLease(ctx, e.leaseName(p), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(ctx)
	sum, _ := e.Run(ctx, []Partition{p})
	if r := sum.Partitions[0]; r.Status != StatusBusy || !strings.Contains(r.Error, "already running") {
		t.Fatalf("status %s error %q, want busy/already running", r.Status, r.Error)
	}
}

func TestChunks(t *testing.T) {
	p := Partition{Scope: testScope, Period: feb2024}
	tests := []struct {
		days    int
		lastDay time.Time
		want    []string
	}{
		{7, time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), []string{"20240201-20240207", "20240208-20240214", "20240215-20240221", "20240222-20240228", "20240229-20240229"}},
		{-1, time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), []string{"20240201-20240229"}},
		{10, time.Date(2024, 2, 12, 0, 0, 0, 0, time.UTC), []string{"20240201-20240210", "20240211-20240220"}},
		{1, time.Date(2024, 2, 2, 0, 0, 0, 0, time.UTC), []string{"20240201-20240201", "20240202-20240202"}},
	}
	for _, tt := range tests {
		var got []string
		for _, c := range Chunks(p, tt.days, tt.lastDay) {
			got = append(got, c.Key())
		}
		if strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("Chunks(%d days, last %s) = %v, want %v", tt.days, tt.lastDay.Format("0102"), got, tt.want)
		}
	}
}

func TestRowKey(t *testing.T) {
	a := `{"id":"/a/1","name":"1","kind":"legacy","properties":{"cost":1}}`
	b := `{"id":"/b/billingPeriods/202401/2","name":"2","kind":"legacy","properties":{"cost":1}}`
	c := `{"id":"/a/1","name":"1","kind":"legacy","properties":{"cost":2}}`
	ka, _ := RowKey([]byte(a))
	kb, _ := RowKey([]byte(b))
	kc, _ := RowKey([]byte(c))
	if ka != kb || ka == kc {
		t.Errorf("row keys: envelope must not count, content must: %s %s %s", ka, kb, kc)
	}
	out, err := withRowKey(nil, []byte(a))
	if err != nil || !json.Valid(out) || !strings.HasPrefix(string(out), `{"_rowKey":"`+ka+`","id"`) {
		t.Errorf("withRowKey = %s, %v", out, err)
	}
	empty, _ := withRowKey(nil, []byte(`{}`))
	if !json.Valid(empty) {
		t.Errorf("withRowKey({}) = %s", empty)
	}
}

func TestOverlapFromRecords(t *testing.T) {
	st, err := store.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dept := scope.MustParse("/providers/Microsoft.Billing/departments/1234")
	e := newTestExporter(t, st, &fakeSource{perDay: 2}, Options{PartDays: -1})
	sum, err := e.Run(context.Background(), []Partition{
		{Scope: testScope, Period: feb2024, Metric: "actualcost"},
		{Scope: dept, Period: feb2024, Metric: "actualcost"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Overlaps) != 1 || sum.Overlaps[0].SharedSubscriptions != 2 {
		t.Fatalf("overlaps = %+v, want one pair sharing 2 subscriptions", sum.Overlaps)
	}
}
