package export_test

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
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/klauspost/compress/gzip"

	"github.com/usage-export/usage-export/internal/consumption"
	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/mgmt"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/record"
	"github.com/usage-export/usage-export/internal/scope"
	"github.com/usage-export/usage-export/internal/store"
)

// fixtureDir holds the published API examples, unchanged (see its SOURCES.md).
const fixtureDir = "../consumption/testdata/fixtures"

type example struct {
	Parameters map[string]any `json:"parameters"`
	Responses  map[string]struct {
		Body struct {
			Value []json.RawMessage `json:"value"`
		} `json:"body"`
	} `json:"responses"`
}

// exampleScope rebuilds the scope of an example from its parameters: {scope} from 2019-10-01
// on, the per-operation ids on 2018-06-30.
func exampleScope(p map[string]any) (string, bool) {
	str := func(k string) string { s, _ := p[k].(string); return s }
	var s string
	switch {
	case str("scope") != "":
		s = str("scope")
	case str("subscriptionId") != "":
		s = "/subscriptions/" + str("subscriptionId")
	case str("billingAccountId") != "":
		s = "/providers/Microsoft.Billing/billingAccounts/" + str("billingAccountId")
	case str("departmentId") != "":
		s = "/providers/Microsoft.Billing/departments/" + str("departmentId")
	case str("enrollmentAccountId") != "":
		s = "/providers/Microsoft.Billing/enrollmentAccounts/" + str("enrollmentAccountId")
	case str("managementGroupId") != "":
		s = "/providers/Microsoft.Management/managementGroups/" + str("managementGroupId")
	default:
		return "", false
	}
	return s, true
}

// TestFixturesExportUnchanged serves every published usageDetails example through a test server
// and exports it: each exported line equals the example's record (JSON-semantic equality, and
// byte for byte once the pretty-printed example is compacted).
func TestFixturesExportUnchanged(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(fixtureDir, "*", "*.json"))
	if len(files) < 60 {
		t.Fatalf("found %d fixture files, want all of them", len(files))
	}
	for _, file := range files {
		version := filepath.Base(filepath.Dir(file))
		t.Run(version+"/"+filepath.Base(file), func(t *testing.T) {
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var ex example
			if err := json.Unmarshal(b, &ex); err != nil {
				t.Fatal(err)
			}
			raw, ok := exampleScope(ex.Parameters)
			if !ok {
				t.Fatalf("no scope in parameters %v", ex.Parameters)
			}
			sc, err := scope.Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			records := ex.Responses["200"].Body.Value
			if len(records) == 0 {
				t.Fatal("example has no records")
			}
			// The partition is the month of the first record's usage day.
			var f record.Fields
			if err := f.Extract(records[0]); err != nil {
				t.Fatal(err)
			}
			day, err := record.Day(f.Date)
			if err != nil {
				t.Fatal(err)
			}
			p := export.Partition{Scope: sc, Period: period.Of(day), Metric: "actualcost"}
			if bp, _ := ex.Parameters["billingPeriodName"].(string); bp != "" {
				if p.Period, err = period.Parse(bp[:6]); err != nil {
					t.Fatal(err)
				}
			}
			body, _ := json.Marshal(map[string]any{"value": records})
			var got []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				if strings.HasSuffix(r.URL.Path, "/providers/Microsoft.Billing/billingPeriods") {
					// A subscription's billing periods: none listed, so the calendar month.
					_, _ = w.Write([]byte(`{"value":[]}`))
					return
				}
				got = append(got, r.URL.Path)
				_, _ = w.Write(body)
			}))
			defer srv.Close()
			client, err := consumption.NewClient(mgmt.StaticToken("t"), &consumption.Options{
				Endpoint: srv.URL, APIVersion: version,
				ClientOptions: policy.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}},
			})
			if err != nil {
				t.Fatal(err)
			}
			st, err := store.NewLocal(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			src := &export.UsageDetails{Client: client, Version: version}
			e := export.New(st, func(scope.Scope) (export.Source, error) { return src, nil },
				&export.Options{PartDays: -1, Now: func() time.Time { return p.Period.End().AddDate(1, 0, 0) }})
			sum, err := e.Run(context.Background(), []export.Partition{p})
			if err != nil || sum.Failed() > 0 {
				t.Fatalf("export: %v %v", err, sum.Err())
			}
			if len(got) != 1 || !strings.HasPrefix(strings.ToLower(got[0]), strings.ToLower(sc.Path())) {
				t.Errorf("requests %v, want one under %s", got, sc.Path())
			}
			// Records fetched by date range (MCA) are kept only inside the partition's month.
			byPeriod := sc.SupportsBillingPeriod()
			var want []string
			for _, r := range records {
				if !byPeriod {
					_ = f.Extract(r)
					if d, err := record.Day(f.Date); err != nil || period.Of(d) != p.Period {
						continue
					}
				}
				var c bytes.Buffer
				if err := json.Compact(&c, r); err != nil {
					t.Fatal(err)
				}
				want = append(want, c.String())
			}
			lines := partLines(t, st.Dir(), e.Dir(p))
			sort.Strings(want)
			sort.Strings(lines)
			if len(lines) != len(want) {
				t.Fatalf("%d lines exported, want %d", len(lines), len(want))
			}
			for i := range want {
				if lines[i] != want[i] {
					t.Errorf("line %d differs from the API's record:\n got %s\nwant %s", i, lines[i], want[i])
				}
				var a, b any
				_ = json.Unmarshal([]byte(lines[i]), &a)
				_ = json.Unmarshal([]byte(want[i]), &b)
				if !reflect.DeepEqual(a, b) {
					t.Errorf("line %d is not JSON-equal to the API's record", i)
				}
			}
		})
	}
}

func partLines(t *testing.T, root, dir string) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(root, dir, "part-*.jsonl.gz"))
	var out []string
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(fh)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(zr)
		fh.Close()
		for _, l := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
			if l != "" {
				out = append(out, l)
			}
		}
	}
	return out
}
