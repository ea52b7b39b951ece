package focus

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/usage-export/usage-export/internal/decimal"
	"github.com/usage-export/usage-export/internal/metric"
	"github.com/usage-export/usage-export/internal/scope"
)

// readmeQuery returns README.md's first FOCUS query (effective cost by service and month): the
// sql block after the focus-query:duckdb marker, with the glob pointed at dir and the cost cast
// to text for scanning.
func readmeQuery(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(b), "<!-- focus-query:duckdb")
	if !ok {
		t.Fatal("README.md has no focus-query:duckdb marker")
	}
	_, after, _ = strings.Cut(after, "```sql\n")
	q, _, ok := strings.Cut(after, "```")
	if !ok {
		t.Fatal("README.md: no sql block after the focus-query marker")
	}
	glob := "'usage/dataset=focus/scope=*/billingPeriod=*/*.jsonl.gz'"
	if !strings.Contains(q, glob) {
		t.Fatalf("README query does not read %s:\n%s", glob, q)
	}
	q = strings.Replace(q, glob, "'"+filepath.Join(dir, "usage", "dataset=focus", "scope=*", "billingPeriod=*", "*.jsonl.gz")+"'", 1)
	return "SELECT month, ServiceName, BillingCurrency, EffectiveCost::VARCHAR FROM (" + strings.TrimSuffix(strings.TrimSpace(q), ";") + ")"
}

// TestDuckDBReadsFocus reads the FOCUS tree of four scopes over three periods with DuckDB and
// compares row counts and BilledCost/EffectiveCost per scope, period and currency with the
// manifests, exactly; then runs the README query and checks it adds up to the manifests.
func TestDuckDBReadsFocus(t *testing.T) {
	w := newWorld(t)
	w.run(t, string(metric.ActualCost), string(metric.AmortizedCost))
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	glob := filepath.Join(w.dir, "usage", "dataset=focus", "scope=*", "billingPeriod=*", "*.jsonl.gz")
	rows, err := db.Query(fmt.Sprintf(`
SELECT scope, CAST(billingPeriod AS VARCHAR), json->>'BillingCurrency', count(*),
       sum(CAST(json->>'BilledCost' AS DECIMAL(38,18)))::VARCHAR, sum(CAST(json->>'EffectiveCost' AS DECIMAL(38,18)))::VARCHAR
FROM read_json_objects('%s', format = 'newline_delimited', hive_partitioning = true)
GROUP BY ALL ORDER BY ALL`, glob))
	if err != nil {
		t.Fatalf("duckdb: %v", err)
	}
	type key struct{ scope, period, cur string }
	type got struct {
		n                 int64
		billed, effective string
	}
	read := map[key]got{}
	for rows.Next() {
		var k key
		var g got
		if err := rows.Scan(&k.scope, &k.period, &k.cur, &g.n, &g.billed, &g.effective); err != nil {
			t.Fatal(err)
		}
		read[k] = g
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	effectiveByMonth := map[string]*decimal.Sum{} // month currency → Σ manifests
	var table []string
	for _, sc := range w.scopes {
		col, err := scope.UnescapePathName(sc.Folder())
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range w.periods {
			m := w.manifest(t, sc, p)
			var n int64
			for cur, billed := range m.Totals["BilledCost"] {
				g := read[key{col, p.String(), cur}]
				n += g.n
				effective := m.Totals["EffectiveCost"][cur]
				if !sameDec(g.billed, billed) || !sameDec(g.effective, effective) {
					t.Errorf("%s %s %s: DuckDB BilledCost %s EffectiveCost %s, manifest %s %s", col, p, cur, g.billed, g.effective, billed, effective)
				}
				table = append(table, fmt.Sprintf("%-58s %s %s rows %5d/%5d  BilledCost %s / %s  EffectiveCost %s / %s",
					sc.Folder(), p, cur, g.n, m.DataRowCount, trim(g.billed), billed, trim(g.effective), effective))
				k := fmt.Sprintf("%04d-%02d %s", p.Year, p.Month, cur)
				if effectiveByMonth[k] == nil {
					effectiveByMonth[k] = &decimal.Sum{}
				}
				_ = effectiveByMonth[k].AddString(effective)
			}
			if n != m.DataRowCount {
				t.Errorf("%s %s: DuckDB reads %d rows, manifest says %d", col, p, n, m.DataRowCount)
			}
		}
	}
	t.Logf("DuckDB (rows, sums) / manifest:\n%s", strings.Join(table, "\n"))

	rows, err = db.Query(readmeQuery(t, w.dir))
	if err != nil {
		t.Fatalf("README query: %v", err)
	}
	defer rows.Close()
	byMonth := map[string]*decimal.Sum{}
	var out []string
	for rows.Next() {
		var month, service, cur, cost string
		if err := rows.Scan(&month, &service, &cur, &cost); err != nil {
			t.Fatal(err)
		}
		k := month + " " + cur
		if byMonth[k] == nil {
			byMonth[k] = &decimal.Sum{}
		}
		if err := byMonth[k].AddString(cost); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s %-28s %s %s", month, service, cur, trim(cost)))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	t.Logf("README query, effective cost by service and month:\n%s", strings.Join(out, "\n"))
	if len(byMonth) != len(effectiveByMonth) {
		t.Errorf("README query months %d, manifests %d", len(byMonth), len(effectiveByMonth))
	}
	for k, want := range effectiveByMonth {
		if byMonth[k] == nil || byMonth[k].Rat().Cmp(want.Rat()) != 0 {
			t.Errorf("README query %s: Σ %v, manifests Σ %s", k, byMonth[k], want.String())
		}
	}
}

// trim drops DECIMAL(38,18)'s trailing zeros for the log.
func trim(s string) string {
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}
