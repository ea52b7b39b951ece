package lake

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/usage-export/usage-export/internal/consumption"
	"github.com/usage-export/usage-export/internal/decimal"
	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/metric"
	"github.com/usage-export/usage-export/internal/mgmt"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/record"
	"github.com/usage-export/usage-export/internal/sandbox"
	"github.com/usage-export/usage-export/internal/sandbox/sandboxtest"
	"github.com/usage-export/usage-export/internal/scope"
	"github.com/usage-export/usage-export/internal/store"
)

var now = time.Date(2026, 10, 14, 9, 0, 0, 0, time.UTC)

// TestDuckDBReadsPartitions exports legacy (EA) and modern (MCA) scopes for two periods and two
// metrics, then reads the tree with DuckDB exactly as the README shows.
func TestDuckDBReadsPartitions(t *testing.T) {
	sb := sandboxtest.Start(t, &sandbox.Options{RecordsPerDay: 2, Now: func() time.Time { return now }})
	var scopes []scope.Scope
	// Both EA enrollments (USD and EUR, legacy records) and one MCA billing profile (modern).
	for _, s := range sb.Scopes() {
		if s.Kind == scope.BillingAccount || (s.Kind == scope.BillingProfile && len(scopes) < 3) {
			scopes = append(scopes, s)
		}
	}
	dir := t.TempDir()
	st, err := store.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	client, err := consumption.NewClient(mgmt.StaticToken(sb.Token()), &consumption.Options{
		Endpoint: sb.URL(), ClientOptions: policy.ClientOptions{Retry: policy.RetryOptions{RetryDelay: 10 * time.Millisecond}},
	})
	if err != nil {
		t.Fatal(err)
	}
	src := &export.UsageDetails{Client: client, Version: client.APIVersion()}
	e := export.New(st, func(scope.Scope) (export.Source, error) { return src, nil },
		&export.Options{Prefix: "usage", PartDays: 7, Now: func() time.Time { return now }})
	parts := bothMetrics(scopes, testPeriods)
	sum, err := e.Run(context.Background(), parts)
	if err != nil || sum.Failed() > 0 {
		t.Fatalf("export: %v %v", err, sum.Err())
	}

	res := queryREADME(t, dir)
	got, gotRows := res.sums, res.rows
	t.Logf("DuckDB:\n%s", strings.Join(res.table, "\n"))
	var truthTable []string
	kinds := map[string]bool{}
	for _, p := range parts {
		truth, err := sb.GroundTruth(p.Scope, p.Period, string(p.Metric))
		if err != nil {
			t.Fatal(err)
		}
		k := keyOf(t, p)
		if gotRows[k] != truth.Rows {
			t.Errorf("%v: DuckDB counts %d rows, ground truth %d (partitions read: %v)", k, gotRows[k], truth.Rows, keys(gotRows))
		}
		// The manifest's totals (cost field → currency → sum), summed over the billing-currency
		// cost fields as the query's coalesce does, must equal the query's sums exactly.
		m := readManifest(t, st, e.ManifestName(p))
		for kind := range m.RecordKinds {
			kinds[kind] = true
		}
		perCurrency := map[string]*big.Rat{}
		for field, byCur := range m.Totals {
			if field == record.FieldCostInUSD { // a second total of modern records, in USD
				continue
			}
			for cur, v := range byCur {
				d, err := decimal.Parse(v)
				if err != nil {
					t.Fatal(err)
				}
				if perCurrency[cur] == nil {
					perCurrency[cur] = new(big.Rat)
				}
				perCurrency[cur].Add(perCurrency[cur], d.Rat())
			}
		}
		if len(perCurrency) != len(got[k]) {
			t.Errorf("%v: manifest currencies %v, DuckDB %v", k, perCurrency, got[k])
		}
		for cur, want := range perCurrency {
			g, err := decimal.Parse(got[k][cur])
			if err != nil || g.Rat().Cmp(want) != 0 {
				t.Errorf("%v %s: DuckDB sum %s, manifest total %s", k, cur, got[k][cur], want.FloatString(18))
			}
		}
		if int64(gotRows[k]) != m.DataRowCount {
			t.Errorf("%v: DuckDB counts %d rows, manifest %d", k, gotRows[k], m.DataRowCount)
		}
		for cur, want := range truth.Sums {
			if !sameDecimal(got[k][cur], want) {
				t.Errorf("%v %s: DuckDB sum %s, ground truth %s", k, cur, got[k][cur], want)
			}
			truthTable = append(truthTable, fmt.Sprintf("%-14s %-72s %s %s %6d %s", p.Metric, k.scope, k.period, cur, truth.Rows, want))
		}
	}
	if !kinds["legacy"] || !kinds["modern"] {
		t.Errorf("record kinds exported: %v, want legacy and modern", kinds)
	}
	sort.Strings(truthTable)
	t.Logf("ground truth:\n%s", strings.Join(truthTable, "\n"))
}

// testPeriods are the two closed billing periods before now that the tests export.
var testPeriods = []period.Period{period.Of(now).Add(-2), period.Of(now).Add(-1)}

// bothMetrics returns the partitions of every scope and period, each for actual and amortized
// cost.
func bothMetrics(scopes []scope.Scope, periods []period.Period) []export.Partition {
	var parts []export.Partition
	for _, sc := range scopes {
		for _, p := range periods {
			for _, m := range []string{"actualcost", "amortizedcost"} {
				parts = append(parts, export.Partition{Scope: sc, Period: p, Metric: metric.Metric(m)})
			}
		}
	}
	return parts
}

// lakeKey is a partition as the README query's columns name it.
type lakeKey struct{ metric, scope, period string }

// keyOf returns the query's key of partition p. DuckDB decodes the Hive escapes of the folder
// name, as Spark and Hive do: the scope column holds "billingProfile-1234:56789_2019-05-31/AB12-…".
func keyOf(t *testing.T, p export.Partition) lakeKey {
	t.Helper()
	col, err := scope.UnescapePathName(p.Scope.Folder())
	if err != nil {
		t.Fatal(err)
	}
	return lakeKey{string(p.Metric), col, p.Period.String()}
}

// lakeResult is what the README's query reads from an export tree.
type lakeResult struct {
	rows  map[lakeKey]int               // rows per partition
	sums  map[lakeKey]map[string]string // exact cost sums per partition and currency
	table []string                      // the query's rows as text, for the log
}

// queryREADME runs README.md's DuckDB query, as it is written but for the folder, over the export
// tree under dir/usage.
func queryREADME(t *testing.T, dir string) lakeResult {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	q := strings.Replace(readmeQuery(t), "'usage/metric=*/scope=*/billingPeriod=*/*.jsonl.gz'",
		"'"+filepath.Join(dir, "usage", "metric=*", "scope=*", "billingPeriod=*", "*.jsonl.gz")+"'", 1)
	rows, err := db.Query(q)
	if err != nil {
		t.Fatalf("README's DuckDB query: %v\n%s", err, q)
	}
	defer rows.Close()
	res := lakeResult{rows: map[lakeKey]int{}, sums: map[lakeKey]map[string]string{}}
	for rows.Next() {
		var metric, sc, bp, cur string
		var cost decimalText
		var n int
		if err := rows.Scan(&metric, &sc, &bp, &cur, &n, &cost); err != nil {
			t.Fatal(err)
		}
		k := lakeKey{metric, sc, bp}
		res.rows[k] += n
		if res.sums[k] == nil {
			res.sums[k] = map[string]string{}
		}
		res.sums[k][cur] = string(cost)
		res.table = append(res.table, fmt.Sprintf("%-14s %-72s %s %s %6d %s", metric, sc, bp, cur, n, cost))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return res
}

// readmeQuery returns the DuckDB query of README.md's lake section: the sql block after the
// lake-query:duckdb marker.
func readmeQuery(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(b), "<!-- lake-query:duckdb")
	if !ok {
		t.Fatal("README.md has no lake-query:duckdb marker")
	}
	_, after, ok = strings.Cut(after, "```sql\n")
	if !ok {
		t.Fatal("no sql block after the marker")
	}
	q, _, ok := strings.Cut(after, "```")
	if !ok {
		t.Fatal("unterminated sql block")
	}
	return q
}

func readManifest(t *testing.T, st *store.Local, name string) *manifest.Manifest {
	t.Helper()
	rc, _, err := st.Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// decimalText scans a DuckDB DECIMAL as its exact text.
type decimalText string

func (d *decimalText) Scan(v any) error {
	switch x := v.(type) {
	case string:
		*d = decimalText(x)
	case []byte:
		*d = decimalText(x)
	default:
		if s, ok := v.(fmt.Stringer); ok {
			*d = decimalText(s.String())
			return nil
		}
		return fmt.Errorf("scanning %T as a decimal", v)
	}
	return nil
}

func keys[K comparable, V any](m map[K]V) []K {
	var out []K
	for k := range m {
		out = append(out, k)
	}
	return out
}

func sameDecimal(a, b string) bool {
	x, err1 := decimal.Parse(a)
	y, err2 := decimal.Parse(b)
	return err1 == nil && err2 == nil && x.Rat().Cmp(y.Rat()) == 0
}
