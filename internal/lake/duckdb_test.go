package lake

import (
	"context"
	"database/sql"
	"fmt"
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
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/sandbox"
	"github.com/usage-export/usage-export/internal/scope"
	"github.com/usage-export/usage-export/internal/store"
)

var now = time.Date(2026, 10, 14, 9, 0, 0, 0, time.UTC)

// TestDuckDBReadsPartitions exports legacy (EA) and modern (MCA) scopes for two periods and two
// metrics, then reads the tree with DuckDB exactly as the README shows.
func TestDuckDBReadsPartitions(t *testing.T) {
	sb, err := sandbox.New(&sandbox.Options{RecordsPerDay: 2, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if err := sb.Start(); err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
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
	client, err := consumption.NewClient(consumption.StaticToken(sb.Token()), &consumption.Options{
		Endpoint: sb.URL(), ClientOptions: policy.ClientOptions{Retry: policy.RetryOptions{RetryDelay: 10 * time.Millisecond}},
	})
	if err != nil {
		t.Fatal(err)
	}
	src := &export.UsageDetails{Client: client, Version: client.APIVersion()}
	e := export.New(st, func(scope.Scope) (export.Source, error) { return src, nil },
		&export.Options{Prefix: "usage", PartDays: 7, Now: func() time.Time { return now }})
	periods := []period.Period{period.Of(now).Add(-2), period.Of(now).Add(-1)}
	var parts []export.Partition
	for _, sc := range scopes {
		for _, p := range periods {
			for _, m := range []string{"actualcost", "amortizedcost"} {
				parts = append(parts, export.Partition{Scope: sc, Period: p, Metric: m})
			}
		}
	}
	sum, err := e.Run(context.Background(), parts)
	if err != nil || sum.Failed() > 0 {
		t.Fatalf("export: %v %v", err, sum.Err())
	}

	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	glob := filepath.Join(dir, "usage", "metric=*", "scope=*", "billingPeriod=*", "*.jsonl.gz")
	// Costs are read as text and cast to DECIMAL(38,18), so the sums are exact like the manifest's.
	q := fmt.Sprintf(`
WITH r AS (
  SELECT metric, scope, CAST(billingPeriod AS VARCHAR) AS billingPeriod, json->>'$.kind' AS kind,
         coalesce(json->>'$.properties.billingCurrency', json->>'$.properties.billingCurrencyCode') AS currency,
         CAST(coalesce(json->>'$.properties.cost', json->>'$.properties.costInBillingCurrency') AS DECIMAL(38,18)) AS cost
  FROM read_json_objects('%s', hive_partitioning = true, format = 'newline_delimited'))
SELECT metric, scope, billingPeriod, kind, currency, count(*) AS n, sum(cost)::VARCHAR AS cost
FROM r GROUP BY ALL ORDER BY ALL`, glob)
	rows, err := db.Query(q)
	if err != nil {
		t.Fatalf("duckdb query: %v", err)
	}
	defer rows.Close()
	type key struct{ metric, scope, period string }
	got := map[key]map[string]string{}
	gotRows := map[key]int{}
	kinds := map[string]bool{}
	var table []string
	for rows.Next() {
		var metric, scopeCol, bp, kind, cur, cost string
		var n int
		if err := rows.Scan(&metric, &scopeCol, &bp, &kind, &cur, &n, &cost); err != nil {
			t.Fatal(err)
		}
		k := key{metric, scopeCol, bp}
		if got[k] == nil {
			got[k] = map[string]string{}
		}
		got[k][cur] = cost
		gotRows[k] += n
		kinds[kind] = true
		table = append(table, fmt.Sprintf("%-14s %-72s %s %-6s %s %6d %s", metric, scopeCol, bp, kind, cur, n, cost))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	t.Logf("DuckDB:\n%s", strings.Join(table, "\n"))
	if !kinds["legacy"] || !kinds["modern"] {
		t.Errorf("record kinds read: %v, want legacy and modern", kinds)
	}
	var truthTable []string
	for _, p := range parts {
		truth, err := sb.GroundTruth(p.Scope, p.Period, p.Metric)
		if err != nil {
			t.Fatal(err)
		}
		// DuckDB decodes the Hive escapes of the folder name, as Spark and Hive do: the column
		// holds "billingProfile-1234:56789_2019-05-31/AB12-…".
		col, err := scope.UnescapePathName(p.Scope.Folder())
		if err != nil {
			t.Fatal(err)
		}
		k := key{p.Metric, col, p.Period.String()}
		if gotRows[k] != truth.Rows {
			t.Errorf("%v: DuckDB counts %d rows, ground truth %d (partitions read: %v)", k, gotRows[k], truth.Rows, keys(gotRows))
		}
		for cur, want := range truth.Sums {
			if !sameDecimal(got[k][cur], want) {
				t.Errorf("%v %s: DuckDB sum %s, ground truth %s", k, cur, got[k][cur], want)
			}
			truthTable = append(truthTable, fmt.Sprintf("%-14s %-72s %s %s %6d %s", p.Metric, k.scope, k.period, cur, truth.Rows, want))
		}
	}
	sort.Strings(truthTable)
	t.Logf("ground truth:\n%s", strings.Join(truthTable, "\n"))
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
