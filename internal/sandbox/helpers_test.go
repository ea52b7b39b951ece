package sandbox

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// testNow is "today" for every test: March 15, 2024 (so FirstMonth defaults to 202302).
var testNow = time.Date(2024, 3, 15, 10, 30, 0, 0, time.UTC)

// fakeClock is a wall clock that tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: testNow} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newTestServer starts the sandbox behind httptest with small data and a fixed Now.
func newTestServer(t *testing.T, o *Options) (*Server, *httptest.Server) {
	t.Helper()
	var opt Options
	if o != nil {
		opt = *o
	}
	if opt.RecordsPerDay == 0 {
		opt.RecordsPerDay = 2
	}
	if opt.Now == nil {
		opt.Now = func() time.Time { return testNow }
	}
	if opt.Token == "" {
		opt.Token = "test-token"
	}
	s, err := New(&opt)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		_ = s.Close()
		ts.Close()
	})
	return s, ts
}

// do sends an authenticated request and returns the response with its body read.
func do(t *testing.T, s *Server, method, rawURL string, body []byte) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, rawURL, rd)
	if err != nil {
		t.Fatalf("request %s: %v", rawURL, err)
	}
	if s != nil {
		req.Header.Set("Authorization", "Bearer "+s.Token())
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading %s: %v", rawURL, err)
	}
	return resp, b
}

func get(t *testing.T, s *Server, rawURL string) (*http.Response, []byte) {
	t.Helper()
	return do(t, s, http.MethodGet, rawURL, nil)
}

type page struct {
	Value    []json.RawMessage `json:"value"`
	NextLink *string           `json:"nextLink"`
}

func usageURL(base, scopePath, query string) string {
	return base + scopePath + "/providers/Microsoft.Consumption/usageDetails?" + query
}

// fetchAll follows nextLinks from first and returns every record and the page count. It fails
// on a non-200/204 status, a foreign host or a repeated link.
func fetchAll(t *testing.T, s *Server, first string) ([]json.RawMessage, int) {
	t.Helper()
	u0, _ := url.Parse(first)
	seen := map[string]bool{}
	var recs []json.RawMessage
	pages := 0
	for link := first; link != ""; {
		if seen[link] {
			t.Fatalf("nextLink repeated: %s", link)
		}
		seen[link] = true
		u, err := url.Parse(link)
		if err != nil || u.Host != u0.Host || u.Scheme != u0.Scheme {
			t.Fatalf("nextLink %q: not on %s", link, u0.Host)
		}
		resp, body := get(t, s, link)
		if resp.StatusCode == http.StatusNoContent {
			if len(body) != 0 {
				t.Fatalf("204 with body %q", body)
			}
			break
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: status %d: %s", link, resp.StatusCode, body)
		}
		var p page
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatalf("decoding page: %v", err)
		}
		pages++
		recs = append(recs, p.Value...)
		link = ""
		if p.NextLink != nil {
			link = *p.NextLink
		}
	}
	return recs, pages
}

type decoded struct {
	Kind       *string        `json:"kind"`
	Tags       map[string]any `json:"tags"`
	Properties map[string]any `json:"properties"`
}

func decodeRecord(t *testing.T, raw []byte) decoded {
	t.Helper()
	var d decoded
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("decoding record: %v\n%s", err, raw)
	}
	return d
}

// truthOfRecords recomputes a Truth from records as a client sees them.
func truthOfRecords(t *testing.T, recs []json.RawMessage) Truth {
	t.Helper()
	tr := Truth{Sums: map[string]string{}, Kinds: map[string]int{}}
	sums := map[string]*decSum{}
	var usd *decSum
	var digests []string
	for _, raw := range recs {
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			t.Fatalf("compacting: %v", err)
		}
		digests = append(digests, RecordDigest(buf.Bytes()))
		d := decodeRecord(t, raw)
		kind := ""
		if d.Kind != nil {
			kind = *d.Kind
		}
		tr.Kinds[kind]++
		costF, curF, dateF := "pretaxCost", "currency", "usageStart"
		switch kind {
		case "legacy":
			costF, curF, dateF = "cost", "billingCurrency", "date"
		case "modern":
			costF, curF, dateF = "costInBillingCurrency", "billingCurrencyCode", "date"
			if usd == nil {
				usd = &decSum{}
			}
			if !usd.addText(string(d.Properties["costInUSD"].(json.Number))) {
				t.Fatalf("costInUSD %v not a decimal", d.Properties["costInUSD"])
			}
		}
		cur := d.Properties[curF].(string)
		if sums[cur] == nil {
			sums[cur] = &decSum{}
		}
		n, ok := d.Properties[costF].(json.Number)
		if !ok || !sums[cur].addText(string(n)) {
			t.Fatalf("%s %v is not a decimal", costF, d.Properties[costF])
		}
		day := d.Properties[dateF].(string)[:10]
		if tr.MinDate == "" || day < tr.MinDate {
			tr.MinDate = day
		}
		if day > tr.MaxDate {
			tr.MaxDate = day
		}
		tr.Rows++
	}
	for c, sm := range sums {
		tr.Sums[c] = sm.String()
	}
	if usd != nil {
		tr.USDSum = usd.String()
	}
	tr.Hash = HashDigests(digests)
	return tr
}

func compareTruth(t *testing.T, got, want Truth) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if !bytes.Equal(g, w) {
		t.Errorf("truth mismatch\n got %s\nwant %s", g, w)
	}
}

// recordDates returns the set of usage days (YYYY-MM-DD) of records.
func recordDates(t *testing.T, recs []json.RawMessage) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, raw := range recs {
		d := decodeRecord(t, raw)
		v, ok := d.Properties["date"].(string)
		if !ok {
			v = d.Properties["usageStart"].(string)
		}
		out[v[:10]] = true
	}
	return out
}

func errorCode(t *testing.T, body []byte) string {
	t.Helper()
	var e armError
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %q is not ARM JSON: %v", body, err)
	}
	return e.Error.Code
}

func mustContain(t *testing.T, s, sub string) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Errorf("%q does not contain %q", s, sub)
	}
}

func x509CertPool(t *testing.T, pemBytes []byte) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatal("CAPEM has no certificate")
	}
	return pool
}

func tlsConfig(pool *x509.CertPool) *tls.Config {
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

func sprintf(f string, a ...any) string { return fmt.Sprintf(f, a...) }
