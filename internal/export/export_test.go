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
	"github.com/usage-export/usage-export/internal/decimal"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/paging"
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
	drop        bool           // serve only half the days (for the drop guard)
	extra       []time.Time    // days served besides the asked ones (records dated outside the month)
	answer      *period.Period // a date-range query is answered with this whole period instead
}

func (f *fakeSource) Name() manifest.Source { return manifest.SourceUsageDetails }
func (f *fakeSource) APIVersion() string    { return "2024-08-01" }

func (f *fakeSource) days(c Chunk) []time.Time {
	from, to := c.From, c.To
	if f.ignoreDates || c.ByPeriod {
		from, to = c.Period.Start(), c.Period.End().AddDate(0, 0, -1)
	}
	if f.answer != nil && !c.ByPeriod {
		from, to = f.answer.Start(), f.answer.End().AddDate(0, 0, -1)
	}
	out := append([]time.Time(nil), f.extra...)
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

func (f *fakeSource) Fetch(ctx context.Context, c Chunk, h paging.Handler) error {
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
			if err := h.Record(ctx, []byte(fakeRecord(d, i))); err != nil {
				return err
			}
			n++
		}
	}
	return h.PageDone(ctx, paging.Page{Index: 1, Records: n})
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
			st := newLocalStore(t)
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
	st := newLocalStore(t)
	ctx := context.Background()
	p := Partition{Scope: testScope, Period: feb2024, Metric: "actualcost"}
	src := &fakeSource{perDay: 3}
	// 87 rows are 2 pages; at one call a minute and 30 s a listing, the partition is listed in
	// 4 steps of 8 days once its size is known (the first run lists it in one go).
	e := newTestExporter(t, st, src, Options{PartDays: 1, Concurrency: 1,
		CallsPerMinute: func(scope.Scope) float64 { return 1 }, ListingTime: 30 * time.Second})
	if sum, _ := e.Run(ctx, []Partition{p}); sum.Partitions[0].Status != StatusCommitted {
		t.Fatalf("first run: %+v", sum.Partitions[0])
	}
	if len(src.fetched) != 1 || src.fetched["20240201-20240229"] != 1 {
		t.Fatalf("first run listed %v, want the whole period once", src.fetched)
	}
	before := liveManifest(t, st, e, p)

	// The second run fails in the step holding day 20: nothing is published.
	src.failOn, src.fetched = "20240217-20240224", nil
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
	if n := len(src.fetched); n != 2 || src.fetched["20240217-20240224"] != 1 || src.fetched["20240225-20240229"] != 1 {
		t.Errorf("resumed run listed %v, want only the failed step (from its first page) and the one after", src.fetched)
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
	st := newLocalStore(t)
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
	st := newLocalStore(t)
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
	st := newLocalStore(t)
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

func TestOneListingPerPartition(t *testing.T) {
	st := newLocalStore(t)
	src := &fakeSource{perDay: 4}
	e := newTestExporter(t, st, src, Options{})
	p := Partition{Scope: testScope, Period: feb2024, Metric: "actualcost"}
	sum, _ := e.Run(context.Background(), []Partition{p})
	if r := sum.Partitions[0]; r.Status != StatusCommitted || r.Parts != 29 {
		t.Fatalf("status %s parts %d (%s), want committed with 29 day parts", r.Status, r.Parts, r.Error)
	}
	if len(src.fetched) != 1 || src.fetched["20240201-20240229"] != 1 {
		t.Errorf("listed %v, want the whole period once", src.fetched)
	}
	if got, want := readLines(t, filepath.Join(st.Dir(), e.Dir(p))), expected(29, 4, nil); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("%d lines, want %d exactly once each", len(got), len(want))
	}
	m := liveManifest(t, st, e, p)
	if m.Listings != 1 || m.Pages != 1 || m.RecordsReturned != 116 || len(m.ReturnedNotWritten) != 0 {
		t.Errorf("manifest listings %d pages %d returned %d notWritten %v, want 1 1 116 none",
			m.Listings, m.Pages, m.RecordsReturned, m.ReturnedNotWritten)
	}
	for _, b := range m.Blobs {
		if b.UsageDateStart != b.UsageDateEnd || !strings.HasSuffix(b.BlobName, "part-"+strings.ReplaceAll(b.UsageDateStart, "-", "")+"-"+strings.ReplaceAll(b.UsageDateEnd, "-", "")+".jsonl.gz") {
			t.Errorf("blob %s covers %s..%s, want one day named after it", b.BlobName, b.UsageDateStart, b.UsageDateEnd)
		}
	}
}

// TestIgnoredRangeStopsSplitting: a partition listed in steps whose scope ignores the range
// returns the whole month to its first step; the rest of the partition becomes one listing,
// the repeats are counted, and the scope is not split again.
func TestIgnoredRangeStopsSplitting(t *testing.T) {
	st := newLocalStore(t)
	ctx := context.Background()
	src := &fakeSource{perDay: 3, ignoreDates: true}
	e := newTestExporter(t, st, src, Options{CallsPerMinute: func(scope.Scope) float64 { return 1 }, ListingTime: 30 * time.Second})
	p := Partition{Scope: testScope, Period: feb2024, Metric: "actualcost"}
	want := expected(29, 3, nil)
	for run, wantFetched := range []map[string]int{
		{"20240201-20240229": 1},                         // size unknown: one listing
		{"20240201-20240208": 1, "20240209-20240229": 1}, // 4 steps planned; the first shows the range ignored
		{"20240201-20240229": 1},                         // the scope is known to ignore ranges
	} {
		src.fetched = nil
		sum, _ := e.Run(ctx, []Partition{p})
		if r := sum.Partitions[0]; r.Status != StatusCommitted {
			t.Fatalf("run %d: %s %s", run, r.Status, r.Error)
		}
		if fmt.Sprint(src.fetched) != fmt.Sprint(wantFetched) {
			t.Errorf("run %d listed %v, want %v", run, src.fetched, wantFetched)
		}
		if got := readLines(t, filepath.Join(st.Dir(), e.Dir(p))); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("run %d: %d lines, want %d exactly once each", run, len(got), len(want))
		}
		m := liveManifest(t, st, e, p)
		if m.RecordsReturned != m.DataRowCount+sumNotWritten(m) {
			t.Errorf("run %d: returned %d != rows %d + not written %d", run, m.RecordsReturned, m.DataRowCount, sumNotWritten(m))
		}
		if run == 1 && (len(m.ReturnedNotWritten) != 1 || m.ReturnedNotWritten[0].Reason != manifest.NotWrittenOtherListing ||
			m.ReturnedNotWritten[0].Rows != 87-24+24) {
			t.Errorf("run 1 returnedNotWritten %+v, want the other listing's 63 + the first step's 24 repeats", m.ReturnedNotWritten)
		}
	}
}

func sumNotWritten(m *manifest.Manifest) int64 {
	var n int64
	for _, x := range m.ReturnedNotWritten {
		n += x.Rows
	}
	return n
}

// TestNothingBelongsFails: a month-wide date range answered with another period fails the
// partition with the dates received; nothing is committed as an empty partition.
func TestNothingBelongsFails(t *testing.T) {
	st := newLocalStore(t)
	jan := period.Period{Year: 2024, Month: time.January}
	src := &fakeSource{perDay: 2, answer: &jan}
	e := newTestExporter(t, st, src, Options{})
	mca := scope.MustParse("/providers/Microsoft.Billing/billingAccounts/1234:56789_2019-05-31")
	p := Partition{Scope: mca, Period: feb2024, Metric: "actualcost"}
	sum, _ := e.Run(context.Background(), []Partition{p})
	r := sum.Partitions[0]
	if r.Status != StatusFailed || !errors.Is(r.Err, ErrNothingBelongs) ||
		!strings.Contains(r.Error, "none in the partition's days 2024-02-01..2024-02-29: usage dates received 2024-01-01..2024-01-31") {
		t.Fatalf("status %s error %q, want failed naming the dates received", r.Status, r.Error)
	}
	if _, err := os.Stat(filepath.Join(st.Dir(), e.ManifestName(p))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a manifest was committed: %v", err)
	}
}

// TestRecordsOutsideTheMonth: a billing-period listing's records dated outside the calendar
// month belong to the period and are written (in parts of their own days); a date-range
// listing's are counted in the manifest as outside the period.
func TestRecordsOutsideTheMonth(t *testing.T) {
	jan31, mar1 := time.Date(2024, 1, 31, 0, 0, 0, 0, time.UTC), time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	mca := scope.MustParse("/providers/Microsoft.Billing/billingAccounts/1234:56789_2019-05-31")
	for _, tt := range []struct {
		name      string
		sc        scope.Scope
		rows      int64
		parts     int
		notWriten int64
	}{
		{"billing period", testScope, 31 * 2, 31, 0},
		{"date range", mca, 29 * 2, 29, 2 * 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := newLocalStore(t)
			src := &fakeSource{perDay: 2, extra: []time.Time{jan31, mar1}}
			e := newTestExporter(t, st, src, Options{})
			p := Partition{Scope: tt.sc, Period: feb2024, Metric: "actualcost"}
			sum, _ := e.Run(context.Background(), []Partition{p})
			if r := sum.Partitions[0]; r.Status != StatusCommitted || r.Rows != tt.rows || r.Parts != tt.parts {
				t.Fatalf("%s rows %d parts %d (%s), want committed %d rows in %d parts", r.Status, r.Rows, r.Parts, r.Error, tt.rows, tt.parts)
			}
			m := liveManifest(t, st, e, p)
			if m.RecordsReturned != 31*2 || sumNotWritten(m) != tt.notWriten {
				t.Errorf("returned %d not written %+v, want 62 and %d", m.RecordsReturned, m.ReturnedNotWritten, tt.notWriten)
			}
			if tt.notWriten > 0 {
				nw := m.ReturnedNotWritten[0]
				if nw.Reason != manifest.NotWrittenOutsidePeriod || nw.UsageDateRange == nil ||
					nw.UsageDateRange.Min != "2024-01-31" || nw.UsageDateRange.Max != "2024-03-01" || len(nw.Totals["cost"]) == 0 {
					t.Errorf("not written %+v, want outsidePeriod 2024-01-31..2024-03-01 with totals", nw)
				}
			} else if m.UsageDateRange.Min != "2024-01-31" || m.UsageDateRange.Max != "2024-03-01" {
				t.Errorf("usage date range %+v, want 2024-01-31..2024-03-01", m.UsageDateRange)
			}
		})
	}
}

// cancelSource cancels the run during its first listing, as the end of an invocation would.
type cancelSource struct {
	*fakeSource
	cancel func()
	calls  int
}

func (c *cancelSource) Fetch(ctx context.Context, ch Chunk, h paging.Handler) error {
	c.calls++
	if c.calls == 1 {
		c.cancel()
		<-ctx.Done()
		return ctx.Err()
	}
	return c.fakeSource.Fetch(ctx, ch, h)
}

// TestInterruptedListingSplits: a listing stopped from outside (its run's context ended) is split
// in two halves of whole parts by the next run, each listed from its first page.
func TestInterruptedListingSplits(t *testing.T) {
	st := newLocalStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	src := &cancelSource{fakeSource: &fakeSource{perDay: 2}, cancel: cancel}
	e := newTestExporter(t, st, src, Options{})
	p := Partition{Scope: testScope, Period: feb2024, Metric: "actualcost"}
	if sum, _ := e.Run(ctx, []Partition{p}); sum.Partitions[0].Status == StatusCommitted {
		t.Fatal("the interrupted run committed")
	}
	sum, _ := e.Run(context.Background(), []Partition{p})
	if r := sum.Partitions[0]; r.Status != StatusCommitted || !r.Resumed {
		t.Fatalf("second run: %s resumed %v (%s)", r.Status, r.Resumed, r.Error)
	}
	want := map[string]int{"20240201-20240214": 1, "20240215-20240229": 1}
	if fmt.Sprint(src.fetched) != fmt.Sprint(want) {
		t.Errorf("second run listed %v, want the two halves %v", src.fetched, want)
	}
	if got := readLines(t, filepath.Join(st.Dir(), e.Dir(p))); len(got) != 29*2 {
		t.Errorf("%d lines, want %d", len(got), 29*2)
	}
}

// TestFinishedTime: the manifest's finishedTime is when it is written, after submittedTime.
func TestFinishedTime(t *testing.T) {
	st := newLocalStore(t)
	var mu sync.Mutex
	clock := testNow
	o := Options{Prefix: "usage", Now: func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(time.Second) // every reading is a second later
		return clock
	}}
	e := New(st, func(scope.Scope) (Source, error) { return &fakeSource{perDay: 1}, nil }, &o)
	p := Partition{Scope: testScope, Period: feb2024, Metric: "actualcost"}
	if sum, _ := e.Run(context.Background(), []Partition{p}); sum.Partitions[0].Status != StatusCommitted {
		t.Fatalf("%+v", sum.Partitions[0])
	}
	m := liveManifest(t, st, e, p)
	if !m.RunInfo.FinishedTime.After(m.RunInfo.SubmittedTime) {
		t.Errorf("finishedTime %s not after submittedTime %s", m.RunInfo.FinishedTime, m.RunInfo.SubmittedTime)
	}
	mu.Lock()
	last := clock
	mu.Unlock()
	if m.RunInfo.FinishedTime.Before(last.Add(-2 * time.Second)) {
		t.Errorf("finishedTime %s is not the time the manifest was written (clock at the end %s)", m.RunInfo.FinishedTime, last)
	}
}

// TestFirstExportSizedFromPreviousMonth: a partition never exported before is sized from the
// month before it: at one call a minute and 30 s a listing, January's 2 pages make February a
// listing in steps from its first run.
func TestFirstExportSizedFromPreviousMonth(t *testing.T) {
	st := newLocalStore(t)
	src := &fakeSource{perDay: 3}
	e := newTestExporter(t, st, src, Options{CallsPerMinute: func(scope.Scope) float64 { return 1 }, ListingTime: 30 * time.Second})
	jan := period.Period{Year: 2024, Month: time.January}
	for _, per := range []period.Period{jan, feb2024} {
		src.fetched = nil
		sum, _ := e.Run(context.Background(), []Partition{{Scope: testScope, Period: per, Metric: "actualcost"}})
		if r := sum.Partitions[0]; r.Status != StatusCommitted {
			t.Fatalf("%s: %s %s", per, r.Status, r.Error)
		}
	}
	if len(src.fetched) != 4 {
		t.Errorf("February's first export listed %v, want 4 steps sized from January's rows", src.fetched)
	}
}

// newLocalStore returns a local store in a temporary directory.
func newLocalStore(t *testing.T) *store.Local {
	t.Helper()
	st, err := store.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return st
}
