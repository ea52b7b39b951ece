package costdetails

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/usage-export/usage-export/internal/decimal"
	"github.com/usage-export/usage-export/internal/metric"
	"github.com/usage-export/usage-export/internal/mgmt"
	"github.com/usage-export/usage-export/internal/paging"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/record"
	"github.com/usage-export/usage-export/internal/sandbox"
	"github.com/usage-export/usage-export/internal/sandbox/sandboxtest"
	"github.com/usage-export/usage-export/internal/scope"
)

// tally is a paging.Handler that reads each row as the exporter does (internal/record)
// and keeps the numbers ground truth is made of.
type tally struct {
	t        *testing.T
	from, to time.Time // the chunk's days
	rows     int
	pages    int
	sums     map[string]*decimal.Sum
	usd      decimal.Sum
	hasUSD   bool
	min, max string
	f        record.Fields
}

func (h *tally) Record(_ context.Context, raw []byte) error {
	if err := h.f.Extract(raw); err != nil {
		return err
	}
	d, err := record.Day(h.f.Date)
	if err != nil {
		return fmt.Errorf("row %d: %w", h.rows, err)
	}
	if d.Before(h.from) || d.After(h.to) {
		return fmt.Errorf("row %d: usage day %s outside the chunk %s..%s", h.rows, d.Format(time.DateOnly),
			h.from.Format(time.DateOnly), h.to.Format(time.DateOnly))
	}
	if day := d.Format(time.DateOnly); h.min == "" || day < h.min {
		h.min = day
	}
	if day := d.Format(time.DateOnly); day > h.max {
		h.max = day
	}
	cur := string(h.f.Currency)
	if h.sums[cur] == nil {
		h.sums[cur] = new(decimal.Sum)
	}
	if err := h.sums[cur].Add(h.f.Cost); err != nil {
		return fmt.Errorf("row %d: %s %q: %w", h.rows, h.f.CostField, h.f.Cost, err)
	}
	if len(h.f.CostUSD) > 0 {
		h.hasUSD = true
		if err := h.usd.Add(h.f.CostUSD); err != nil {
			return err
		}
	}
	h.rows++
	return nil
}

func (h *tally) PageDone(context.Context, paging.Page) error { h.pages++; return nil }

// check compares the tally with the sandbox's ground truth.
func (h *tally) check(t *testing.T, want sandbox.Truth) {
	t.Helper()
	if h.rows != want.Rows {
		t.Errorf("rows = %d, want %d", h.rows, want.Rows)
	}
	if len(h.sums) != len(want.Sums) {
		t.Errorf("currencies = %d, want %d (%v)", len(h.sums), len(want.Sums), want.Sums)
	}
	for cur, ws := range want.Sums {
		got, ok := h.sums[cur]
		if !ok {
			t.Errorf("no %s rows, want sum %s", cur, ws)
			continue
		}
		if !sameDecimal(t, got.String(), ws) {
			t.Errorf("%s sum = %s, want %s", cur, got, ws)
		}
	}
	if want.USDSum != "" && !sameDecimal(t, h.usd.String(), want.USDSum) {
		t.Errorf("costInUSD sum = %s, want %s", h.usd.String(), want.USDSum)
	}
	if (want.USDSum != "") != h.hasUSD {
		t.Errorf("costInUSD present = %v, want %v", h.hasUSD, want.USDSum != "")
	}
	if h.min != want.MinDate || h.max != want.MaxDate {
		t.Errorf("days %s..%s, want %s..%s", h.min, h.max, want.MinDate, want.MaxDate)
	}
}

func sameDecimal(t *testing.T, a, b string) bool {
	t.Helper()
	x, err1 := decimal.Parse(a)
	y, err2 := decimal.Parse(b)
	if err1 != nil || err2 != nil {
		t.Errorf("parsing %q, %q: %v, %v", a, b, err1, err2)
		return false
	}
	return x.Rat().Cmp(y.Rat()) == 0
}

// startSandbox runs the API sandbox on loopback with "today" at now.
func startSandbox(t *testing.T, now time.Time, o sandbox.Options) *sandbox.Server {
	t.Helper()
	o.Now = func() time.Time { return now }
	if o.RecordsPerDay == 0 {
		o.RecordsPerDay = 2
	}
	return sandboxtest.Start(t, &o)
}

func sandboxClient(t *testing.T, s *sandbox.Server, now time.Time) *Client {
	t.Helper()
	c, err := NewClient(mgmt.StaticToken(s.Token()), &Options{Endpoint: s.URL(), PollInterval: time.Millisecond,
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	// The sandbox asks for 1 s between polls; its report is ready after PollsBeforeDone polls
	// whatever the wait, so the test does not spend the seconds.
	c.sleep = func(ctx context.Context, _ time.Duration) error { return ctx.Err() }
	return c
}

// wholePeriod is the request for the whole period p of sc, as the exporter's Cost Details
// source makes it: the billing period of an EA scope, else the period's days.
func wholePeriod(t *testing.T, sc scope.Scope, p period.Period, metric metric.Metric) Request {
	t.Helper()
	m, err := MetricOf(metric)
	if err != nil {
		t.Fatal(err)
	}
	if sc.Channel() == scope.Legacy {
		return Request{Scope: sc, Metric: m, BillingPeriod: p}
	}
	return Request{Scope: sc, Metric: m, Start: p.Start(), End: p.End().AddDate(0, 0, -1)}
}

func TestSandboxReportsMatchGroundTruth(t *testing.T) {
	now := time.Date(2024, 6, 10, 12, 0, 0, 0, time.UTC)
	s := startSandbox(t, now, sandbox.Options{RowsPerBlob: 700})
	c := sandboxClient(t, s, now)

	type run struct {
		sc     scope.Scope
		per    string
		metric metric.Metric
	}
	var runs []run
	kinds := map[scope.Kind]bool{}
	for _, sc := range s.Scopes() {
		if sc.Kind == scope.ManagementGroup {
			continue // refused before any call (TestInvalidRequestsMakeNoCall)
		}
		if s.Agreement(sc) == sandbox.AgreementPAYG {
			continue // Cost Details serves EA and MCA only (the sandbox's TestCostDetailsValidation)
		}
		runs = append(runs, run{sc, "202405", "actualcost"})
		if !kinds[sc.Kind] { // each kind once more: amortized cost, and the open month
			kinds[sc.Kind] = true
			runs = append(runs, run{sc, "202405", "amortizedcost"}, run{sc, "202406", "actualcost"})
		}
	}
	multiBlob := false
	for _, r := range runs {
		t.Run(fmt.Sprintf("%s/%s/%s", r.sc.Kind, r.sc.IDs[len(r.sc.IDs)-1], r.per+"-"+string(r.metric)), func(t *testing.T) {
			p, _ := period.Parse(r.per)
			req := wholePeriod(t, r.sc, p, r.metric)
			want, err := s.GroundTruth(r.sc, p, string(r.metric))
			if err != nil {
				t.Fatal(err)
			}
			if want.Rows == 0 {
				t.Fatalf("ground truth has no rows; the comparison would prove nothing")
			}
			h := &tally{t: t, from: p.Start(), to: p.End().AddDate(0, 0, -1), sums: map[string]*decimal.Sum{}}
			if err := c.Report(context.Background(), req, h); err != nil {
				t.Fatalf("Report: %v", err)
			}
			h.check(t, want)
			if h.pages > 1 {
				multiBlob = true
			}
		})
	}
	if !multiBlob {
		t.Error("no report had more than one blob; lower RowsPerBlob so the test covers multi-blob manifests")
	}
}

func TestSandboxDayChunksAndGzip(t *testing.T) {
	// Week-sized chunks of an MCA billing profile and an EA department, from gzip-compressed
	// reports: the chunks' rows add up to the month's ground truth.
	now := time.Date(2024, 6, 10, 12, 0, 0, 0, time.UTC)
	s := startSandbox(t, now, sandbox.Options{CompressCSV: true, RowsPerBlob: 300})
	c := sandboxClient(t, s, now)
	p, _ := period.Parse("202405")
	tested := map[scope.Kind]bool{}
	for _, sc := range s.Scopes() {
		if (sc.Kind != scope.BillingProfile && sc.Kind != scope.Department) || tested[sc.Kind] {
			continue
		}
		tested[sc.Kind] = true
		want, err := s.GroundTruth(sc, p, "amortizedcost")
		if err != nil {
			t.Fatal(err)
		}
		total := &tally{t: t, from: p.Start(), to: p.End().AddDate(0, 0, -1), sums: map[string]*decimal.Sum{}}
		last := p.End().AddDate(0, 0, -1)
		for from := p.Start(); !from.After(last); from = from.AddDate(0, 0, 7) {
			// Each chunk's rows must fall on its own days; the tally checks that and adds up.
			to := from.AddDate(0, 0, 6)
			if to.After(last) {
				to = last
			}
			total.from, total.to = from, to
			req := Request{Scope: sc, Metric: MetricAmortizedCost, Start: from, End: to}
			if err := c.Report(context.Background(), req, total); err != nil {
				t.Fatalf("%s %s: Report: %v", sc, req.describe(), err)
			}
		}
		total.check(t, want)
		if total.pages < 5 {
			t.Errorf("%s: %d blobs over 5 chunks, want at least 5", sc, total.pages)
		}
	}
	if len(tested) != 2 {
		t.Fatalf("tested %v, want a billing profile and a department", tested)
	}
}

// bodyRecorder is a Transporter that keeps the bodies of the POSTs it sends.
type bodyRecorder struct {
	mu    sync.Mutex
	posts []string
}

func (b *bodyRecorder) Do(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPost && req.Body != nil {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		b.mu.Lock()
		b.posts = append(b.posts, string(body))
		b.mu.Unlock()
	}
	return http.DefaultTransport.RoundTrip(req)
}

func TestSandboxInvoiceReport(t *testing.T) {
	// A closed month of an MCA billing profile asked for by its invoice (the id its records
	// carry) gives the month's rows; other chunks and scopes are asked for as before.
	now := time.Date(2024, 6, 10, 12, 0, 0, 0, time.UTC)
	s := startSandbox(t, now, sandbox.Options{})
	rec := &bodyRecorder{}
	c, err := NewClient(mgmt.StaticToken(s.Token()), &Options{Endpoint: s.URL(), PollInterval: time.Millisecond,
		Now: func() time.Time { return now }, ClientOptions: policy.ClientOptions{Transport: rec}})
	if err != nil {
		t.Fatal(err)
	}
	c.sleep = func(ctx context.Context, _ time.Duration) error { return ctx.Err() }
	p, _ := period.Parse("202405")
	var prof scope.Scope
	for _, sc := range s.Scopes() {
		if sc.Kind == scope.BillingProfile {
			prof = sc
			break
		}
	}
	// The invoice id, as the previous export's records carry it.
	var lines lineCollector
	whole := wholePeriod(t, prof, p, "actualcost")
	if err := c.Report(context.Background(), whole, &lines); err != nil {
		t.Fatal(err)
	}
	inv := ""
	for _, l := range lines.lines {
		var v struct {
			Properties struct {
				InvoiceID string `json:"invoiceId"`
			} `json:"properties"`
		}
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatal(err)
		}
		if inv == "" {
			inv = v.Properties.InvoiceID
		}
		if v.Properties.InvoiceID != inv || inv == "" {
			t.Fatalf("invoice ids %q and %q in one closed month", inv, v.Properties.InvoiceID)
		}
	}
	want, err := s.GroundTruth(prof, p, "actualcost")
	if err != nil {
		t.Fatal(err)
	}
	h := &tally{t: t, from: whole.Start, to: whole.End, sums: map[string]*decimal.Sum{}}
	if err := c.Report(context.Background(), Request{Scope: prof, Metric: MetricActualCost, InvoiceID: inv}, h); err != nil {
		t.Fatal(err)
	}
	h.check(t, want)
	// A day of the same month.
	day := Request{Scope: prof, Metric: MetricActualCost, Start: p.Start().AddDate(0, 0, 3), End: p.Start().AddDate(0, 0, 3)}
	if err := c.Report(context.Background(), day, &lineCollector{}); err != nil {
		t.Fatal(err)
	}
	wantPosts := []string{`{"metric":"ActualCost","timePeriod":{"start":"2024-05-01","end":"2024-05-31"}}`,
		`{"metric":"ActualCost","invoiceId":"` + inv + `"}`,
		`{"metric":"ActualCost","timePeriod":{"start":"2024-05-04","end":"2024-05-04"}}`}
	if !slices.Equal(rec.posts, wantPosts) {
		t.Errorf("requests\n%q\nwant\n%q", rec.posts, wantPosts)
	}
}
