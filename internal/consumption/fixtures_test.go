package consumption

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/usage-export/usage-export/internal/metric"
	"github.com/usage-export/usage-export/internal/mgmt"
	"github.com/usage-export/usage-export/internal/paging"
	"github.com/usage-export/usage-export/internal/scope"
)

// fixture is one published example file: {"parameters":{…},"responses":{"200":{"body":…},…}}.
type fixture struct {
	Parameters map[string]json.RawMessage `json:"parameters"`
	Responses  map[string]struct {
		Body json.RawMessage `json:"body"`
	} `json:"responses"`
}

// fixtureFiles returns testdata/fixtures/<version>/*.json for every supported version.
func fixtureFiles(t testing.TB) map[string][]string {
	t.Helper()
	files := map[string][]string{}
	for _, v := range APIVersions {
		matches, err := filepath.Glob(filepath.Join("testdata", "fixtures", v, "*.json"))
		if err != nil {
			t.Fatal(err)
		}
		if len(matches) == 0 {
			t.Fatalf("no fixtures for api version %s", v)
		}
		sort.Strings(matches)
		files[v] = matches
	}
	return files
}

func loadFixture(t testing.TB, path string) fixture {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f fixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return f
}

func (f fixture) param(name string) string {
	raw, ok := f.Parameters[name]
	if !ok {
		return ""
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s
	}
	return string(raw) // numbers, e.g. $top
}

// scopeString returns the scope of the example: the {scope} parameter (2019-10-01 and later),
// or the path the 2018-06-30 operation builds from its id parameter.
func (f fixture) scopeString(t testing.TB) string {
	t.Helper()
	if s := f.param("scope"); s != "" {
		return s
	}
	for _, p := range []struct{ param, prefix string }{
		{"subscriptionId", "/subscriptions/"},
		{"billingAccountId", "/providers/Microsoft.Billing/billingAccounts/"},
		{"departmentId", "/providers/Microsoft.Billing/departments/"},
		{"enrollmentAccountId", "/providers/Microsoft.Billing/enrollmentAccounts/"},
		{"managementGroupId", "/providers/Microsoft.Management/managementGroups/"},
	} {
		if id := f.param(p.param); id != "" {
			return p.prefix + id
		}
	}
	t.Fatalf("fixture has no scope parameter: %v", f.Parameters)
	return ""
}

// TestListFixtures serves every published example through a loopback server at the path its
// parameters describe and checks that List delivers exactly the example's records, byte for byte.
func TestListFixtures(t *testing.T) {
	for version, files := range fixtureFiles(t) {
		for _, path := range files {
			f := loadFixture(t, path)
			for status, resp := range f.Responses {
				name := version + "/" + filepath.Base(path) + "/" + status
				t.Run(name, func(t *testing.T) {
					runFixture(t, version, f, status, resp.Body)
				})
			}
		}
	}
}

func runFixture(t *testing.T, version string, f fixture, status string, body json.RawMessage) {
	code, err := strconv.Atoi(status)
	if err != nil {
		t.Fatalf("status %q: %v", status, err)
	}
	scopeStr := f.scopeString(t)
	sc, err := scope.Parse(scopeStr)
	if err != nil {
		t.Fatalf("scope %q: %v", scopeStr, err)
	}
	period := f.param("billingPeriodName")
	wantPath := "/" + strings.TrimPrefix(scopeStr, "/")
	if period != "" {
		wantPath += "/providers/Microsoft.Billing/billingPeriods/" + period
	}
	wantPath += "/providers/Microsoft.Consumption/usageDetails"
	q := Query{Scope: sc, BillingPeriod: period, Metric: metric.Metric(f.param("metric")), Expand: f.param("$expand"), Filter: f.param("$filter")}
	if top := f.param("$top"); top != "" {
		q.Top = must(strconv.Atoi(top))
	}
	wantExpand := q.Expand
	if wantExpand == "" {
		wantExpand = DefaultExpand(version)
	}
	wantQuery := map[string]string{"api-version": version, "$filter": q.Filter, "$expand": wantExpand, "$top": f.param("$top")}
	if version != apiVersionNoMetric {
		wantQuery["metric"] = string(q.Metric)
	}

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath, _, _ := strings.Cut(r.RequestURI, "?")
		if gotPath != wantPath {
			t.Errorf("server got path %q, want %q", gotPath, wantPath)
		}
		for k, want := range wantQuery {
			if got := r.URL.Query().Get(k); got != want {
				t.Errorf("server got %s=%q, want %q", k, got, want)
			}
		}
		if got, want := r.Header.Get("Authorization"), "Bearer "+testToken; got != want {
			t.Errorf("server got Authorization %q, want %q", got, want)
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set(mgmt.HeaderRequestID, "req-1")
		w.WriteHeader(code)
		if code == http.StatusOK {
			_, _ = w.Write(body)
		}
	}))
	defer srv.Close()
	c := newTestClient(t, srv.URL, func(o *Options) { o.APIVersion = version })

	var got collector
	if err := c.List(context.Background(), q, &got); err != nil {
		t.Fatalf("List: %v", err)
	}

	var want struct {
		Value []json.RawMessage `json:"value"`
	}
	if code == http.StatusOK {
		if err := json.Unmarshal(body, &want); err != nil {
			t.Fatal(err)
		}
	}
	if len(got.records) != len(want.Value) {
		t.Fatalf("got %d records, want %d", len(got.records), len(want.Value))
	}
	for i := range want.Value {
		if !bytes.Equal(got.records[i], want.Value[i]) {
			t.Errorf("record %d: bytes differ\ngot:  %s\nwant: %s", i, got.records[i], want.Value[i])
		}
		if g, w := decodeUseNumber(t, got.records[i]), decodeUseNumber(t, want.Value[i]); !reflect.DeepEqual(g, w) {
			t.Errorf("record %d: JSON differs\ngot:  %v\nwant: %v", i, g, w)
		}
	}
	wantPage := paging.Page{Index: 0, Records: len(want.Value), RequestID: "req-1", StatusCode: code}
	if code == http.StatusOK {
		wantPage.Bytes = int64(len(body))
	}
	if len(got.pages) != 1 || got.pages[0] != wantPage {
		t.Errorf("pages = %+v, want [%+v]", got.pages, wantPage)
	}
}

// decodeUseNumber decodes JSON keeping numbers as their literal text.
func decodeUseNumber(t *testing.T, b []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	return v
}

// TestListKeepsDecimalsAndTimestamps pins the lossless guarantee on the values that a float64 or
// time.Time round trip would change.
func TestListKeepsDecimalsAndTimestamps(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"2024-08-01/UsageDetailsList.json", []string{`"cost": 0.000001980949998`, `"date": "2019-04-09T00:00:00.0000000Z"`, `"effectivePrice": 0.054693034210767`}},
		{"2024-08-01/UsageDetailsListByMCABillingAccount.json", []string{`"costInBillingCurrency": 1.84763819095477`, `"exchangeRate": "1"`, `"exchangeRateDate": "2019-09-30T00:00:00Z"`}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			f := loadFixture(t, filepath.Join("testdata", "fixtures", tt.file))
			body := f.Responses["200"].Body
			var got collector
			if _, _, err := ParsePage(context.Background(), bytes.NewReader(body), &got); err != nil {
				t.Fatalf("ParsePage: %v", err)
			}
			if len(got.records) == 0 {
				t.Fatal("no records")
			}
			for _, w := range tt.want {
				if !bytes.Contains(got.records[0], []byte(w)) {
					t.Errorf("record 0 lacks %s:\n%s", w, got.records[0])
				}
			}
		})
	}
}
