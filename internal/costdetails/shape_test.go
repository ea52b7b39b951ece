package costdetails

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/usage-export/usage-export/internal/consumption"
	"github.com/usage-export/usage-export/internal/metric"
	"github.com/usage-export/usage-export/internal/mgmt"
	"github.com/usage-export/usage-export/internal/paging"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/sandbox"
	"github.com/usage-export/usage-export/internal/scope"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/schemas from the sandbox and the converter")

// schemaHeader is a per-call policy that asks the sandbox for one CSV schema version.
type schemaHeader string

func (s schemaHeader) Do(req *policy.Request) (*http.Response, error) {
	req.Raw().Header.Set(sandbox.CSVSchemaHeader, string(s))
	return req.Next()
}

// lineCollector keeps every line it is handed.
type lineCollector struct{ lines []string }

func (c *lineCollector) Record(_ context.Context, raw []byte) error {
	c.lines = append(c.lines, string(raw))
	return nil
}
func (c *lineCollector) PageDone(context.Context, paging.Page) error { return nil }

// comparable returns a line in a canonical form (members sorted, numbers as their text) without
// the members a usageDetails record has and a Cost Details line cannot (id, name, type, etag),
// the properties the schema has no column for, and the Cost Details line's own
// costDetailsColumns member.
func comparable(t *testing.T, line string, drop []string) string {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(line))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	for _, k := range []string{"id", "name", "type", "etag", ExtraColumnsMember} {
		delete(m, k)
	}
	if p, ok := m["properties"].(map[string]any); ok {
		for _, k := range drop {
			delete(p, k)
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestSameLinesBothSources is the proof that both sources write the same lines: for an EA
// billing account and department and an MCA billing profile, each metric and every CSV schema
// version the sandbox serves, the usageDetails records (with $expand=meterDetails,
// additionalInfo) and the Cost Details lines of the same scope, month and metric are the same
// multiset once id/name/type/etag, the properties the schema version has no column for
// (Schema.Missing: the MCA partner fields) and costDetailsColumns are removed.
func TestSameLinesBothSources(t *testing.T) {
	now := time.Date(2024, 6, 10, 12, 0, 0, 0, time.UTC)
	s := startSandbox(t, now, sandbox.Options{RowsPerBlob: 400, RecordsPerDay: 3})
	usage, err := consumption.NewClient(mgmt.StaticToken(s.Token()), &consumption.Options{Endpoint: s.URL(), APIVersion: "2024-08-01"})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := period.Parse("202405")
	var scopes []scope.Scope
	for _, k := range []scope.Kind{scope.BillingAccount, scope.Department, scope.BillingProfile} {
		i := slices.IndexFunc(s.Scopes(), func(sc scope.Scope) bool { return sc.Kind == k })
		scopes = append(scopes, s.Scopes()[i])
	}
	total := 0
	for _, sc := range scopes {
		for _, metric := range []metric.Metric{metric.ActualCost, metric.AmortizedCost} {
			ud := &lineCollector{}
			q := consumption.Query{Scope: sc, Metric: metric, Expand: "properties/meterDetails,properties/additionalInfo",
				From: p.Start(), To: p.End().AddDate(0, 0, -1)}
			if err := usage.List(context.Background(), q, ud); err != nil {
				t.Fatal(err)
			}
			for _, schema := range sandbox.CSVSchemas() {
				modern := strings.HasPrefix(schema, "mca-")
				if modern != (sc.Channel() == scope.Modern) {
					continue
				}
				t.Run(fmt.Sprintf("%s/%s/%s", sc.Kind, metric, schema), func(t *testing.T) {
					c, err := NewClient(mgmt.StaticToken(s.Token()), &Options{Endpoint: s.URL(), PollInterval: time.Millisecond,
						Now: func() time.Time { return now }, ClientOptions: policy.ClientOptions{PerCallPolicies: []policy.Policy{schemaHeader(schema)}}})
					if err != nil {
						t.Fatal(err)
					}
					c.sleep = func(ctx context.Context, _ time.Duration) error { return ctx.Err() }
					cd := &lineCollector{}
					m, _ := MetricOf(metric)
					if err := c.Report(context.Background(), Request{Scope: sc, Metric: m, Start: p.Start(), End: p.End().AddDate(0, 0, -1)}, cd); err != nil {
						t.Fatal(err)
					}
					drop := LookupSchema(schema).Missing()
					count := map[string]int{}
					for _, l := range ud.lines {
						count[comparable(t, l, drop)]++
					}
					for _, l := range cd.lines {
						count[comparable(t, l, drop)]--
					}
					diffs := 0
					for l, n := range count {
						if n != 0 {
							if diffs < 3 {
								t.Errorf("line %+d times more in usageDetails than in Cost Details: %s", n, l)
							}
							diffs++
						}
					}
					if len(ud.lines) == 0 || len(ud.lines) != len(cd.lines) || diffs > 0 {
						t.Errorf("usageDetails %d lines, Cost Details %d lines, %d differing lines", len(ud.lines), len(cd.lines), diffs)
					}
					total += len(cd.lines)
					t.Logf("%s %s %s: %d lines each, %d differences (dropped %v)", sc, metric, schema, len(cd.lines), diffs, drop)
				})
			}
		}
	}
	t.Logf("compared %d Cost Details lines with usageDetails records", total)
}

// TestGoldenSchemas converts a report of each published CSV schema version (testdata/schemas/
// <version>.csv, written by the sandbox) and compares the lines with <version>.jsonl. -update
// rewrites both.
func TestGoldenSchemas(t *testing.T) {
	dir := filepath.Join("testdata", "schemas")
	if *update {
		writeGoldenInputs(t, dir)
	}
	for _, schema := range sandbox.CSVSchemas() {
		t.Run(schema, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join(dir, schema+".csv"))
			if err != nil {
				t.Fatal(err)
			}
			if head, _, _ := bytes.Cut(in, []byte("\r\n")); !bytes.Equal(head, []byte("\ufeff"+strings.Join(sandbox.CSVHeaders(schema), ","))) {
				t.Errorf("%s.csv header is not the published one", schema)
			}
			var got bytes.Buffer
			if _, err := ConvertCSV(bytes.NewReader(in), func(l []byte) error {
				got.Write(l)
				got.WriteByte('\n')
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join(dir, schema+".jsonl")
			if *update {
				if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("%s: lines differ from %s (run go test -run TestGoldenSchemas -update and review the diff)", schema, golden)
			}
		})
	}
}

// writeGoldenInputs asks the sandbox for one day of amortized cost of an EA enrollment account
// and an MCA invoice section in every schema version and stores the CSV as returned.
func writeGoldenInputs(t *testing.T, dir string) {
	now := time.Date(2024, 6, 10, 12, 0, 0, 0, time.UTC)
	s := startSandbox(t, now, sandbox.Options{RecordsPerDay: 2, PollsBeforeDone: -1})
	var ea, mca scope.Scope
	for _, sc := range s.Scopes() {
		switch {
		case sc.Kind == scope.EnrollmentAccount && ea.IsZero():
			ea = sc
		case sc.Kind == scope.InvoiceSection && mca.IsZero():
			mca = sc
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, schema := range sandbox.CSVSchemas() {
		sc := ea
		if strings.HasPrefix(schema, "mca-") {
			sc = mca
		}
		body := `{"metric":"AmortizedCost","timePeriod":{"start":"2024-05-01","end":"2024-05-01"}}`
		resp := sandboxCall(t, s, http.MethodPost, s.URL()+sc.Path()+"/providers/Microsoft.CostManagement/generateCostDetailsReport?api-version="+APIVersion, schema, body)
		loc := resp.Header.Get("Location")
		var res Result
		for resp.StatusCode == http.StatusAccepted {
			resp = sandboxCall(t, s, http.MethodGet, loc, "", "")
		}
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, &res); err != nil || res.Manifest == nil || len(res.Manifest.Blobs) != 1 {
			t.Fatalf("%s: report %s: %v", schema, b, err)
		}
		blob, err := http.Get(res.Manifest.Blobs[0].BlobLink)
		if err != nil {
			t.Fatal(err)
		}
		csvBytes, err := io.ReadAll(blob.Body)
		blob.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, schema+".csv"), csvBytes, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func sandboxCall(t *testing.T, s *sandbox.Server, method, url, schema, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.Token())
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if schema != "" {
		req.Header.Set(sandbox.CSVSchemaHeader, schema)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, b)
	}
	return resp
}
