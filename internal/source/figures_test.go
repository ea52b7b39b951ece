package source_test

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/usage-export/usage-export/internal/consumption"
	"github.com/usage-export/usage-export/internal/costdetails"
	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/mgmt"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/ratelimit"
	"github.com/usage-export/usage-export/internal/sandbox"
	"github.com/usage-export/usage-export/internal/sandbox/sandboxtest"
	"github.com/usage-export/usage-export/internal/scope"
	"github.com/usage-export/usage-export/internal/source"
	"github.com/usage-export/usage-export/internal/store"
)

var figures = flag.Bool("figures", false, "TestSourceFigures: also run the 13-month backfills (about two minutes)")

// timeScale shrinks the API's minute: the per-scope rate windows and the reports' Retry-After
// (60 s in the published examples) run timeScale times faster, so wall times × timeScale are
// the real ones.
const timeScale = 60

// TestSourceFigures exports one closed month, and with -figures a 13-month backfill, of an EA
// billing account and an MCA billing profile (with -figures also an EA department) through
// usageDetails, Cost Details and auto, at the
// scope kind's rate limit (time-scaled), counting ARM calls (the rate budget's attempts) and
// wall time. Auto must never spend more calls than the cheaper forced source; forced Cost
// Details cannot serve the oldest month of a 13-month backfill (13 months back from now), auto
// takes usageDetails for it.
//
//	go test ./internal/source -run TestSourceFigures -figures -v
func TestSourceFigures(t *testing.T) {
	now := time.Date(2026, 10, 14, 9, 0, 0, 0, time.UTC)
	cur := period.Of(now)
	type run struct {
		name    string
		periods []period.Period
	}
	runs := []run{{"1 month", []period.Period{cur.Add(-1)}}}
	if *figures {
		var back []period.Period
		for i := 13; i >= 1; i-- {
			back = append(back, cur.Add(-i))
		}
		runs = append(runs, run{"13-month backfill", back})
	}
	var table []string
	kinds := []scope.Kind{scope.BillingAccount, scope.BillingProfile}
	if *figures {
		kinds = append(kinds, scope.Department) // 2 calls a minute: paging hurts most
	}
	for _, kind := range kinds {
		for _, r := range runs {
			calls := map[manifest.Source]int64{}
			for _, setting := range source.Settings {
				res := exportOnce(t, now, kind, r.periods, setting)
				calls[setting] = res.calls
				table = append(table, fmt.Sprintf("%-15s %-17s %-12s %5d partitions %3d failed %8d rows %5d ARM calls %7.1fs (real ≈ %s)  %s",
					kind, r.name, setting, len(r.periods), res.failed, res.rows, res.calls, res.wall.Seconds(),
					(res.wall*timeScale).Round(time.Second), res.sources))
				switch {
				case setting == source.CostDetails && len(r.periods) == 13:
					if res.failed != 1 {
						t.Errorf("%s %s forced Cost Details: %d failed partitions, want 1 (the month that starts 13 months back)", kind, r.name, res.failed)
					}
				case res.failed != 0:
					t.Errorf("%s %s %s: %d failed partitions", kind, r.name, setting, res.failed)
				}
			}
			// Auto may not spend more than the cheaper forced source, counting for forced Cost
			// Details the listings of the months it cannot serve (at usageDetails' calls a month).
			a, u, c := calls[source.Auto], calls[source.UsageDetails], calls[source.CostDetails]
			perMonth := (u + int64(len(r.periods)) - 1) / int64(len(r.periods))
			if len(r.periods) == 13 {
				c += perMonth
			}
			if a > min(u, c)+2 {
				t.Errorf("%s %s: auto spent %d ARM calls, usageDetails %d, Cost Details (+ the refused month by usageDetails) %d", kind, r.name, a, u, c)
			}
		}
	}
	t.Logf("time scale 1:%d; ARM calls are the rate budget's attempts (usageDetails pages; Cost Details POSTs and polls)\n%s",
		timeScale, strings.Join(table, "\n"))
}

type result struct {
	calls   int64
	rows    int64
	failed  int
	wall    time.Duration
	sources string
}

// exportOnce exports the periods of the first scope of kind into a fresh store with one source
// setting and returns what it cost.
func exportOnce(t *testing.T, now time.Time, kind scope.Kind, periods []period.Period, setting manifest.Source) result {
	t.Helper()
	// The per-scope-kind limits (ratelimit.DefaultPerKind: the observed ones, e.g. billing
	// account 6, department 2 calls a minute) in the sandbox and in the client's rate budget.
	rate := ratelimit.DefaultPerKind[kind]
	window := time.Minute / timeScale
	sb := sandboxtest.Start(t, &sandbox.Options{RecordsPerDay: 40, Now: func() time.Time { return now },
		RatePerKind: ratelimit.DefaultPerKind, RateWindow: window, PollInterval: time.Minute / timeScale, PollsBeforeDone: 2})
	var sc scope.Scope
	for _, s := range sb.Scopes() {
		if s.Kind == kind {
			sc = s
			break
		}
	}
	budget := ratelimit.New(&ratelimit.Options{Window: window})
	co := policy.ClientOptions{PerRetryPolicies: []policy.Policy{budget.Policy()},
		Retry: policy.RetryOptions{RetryDelay: window / 10, MaxRetryDelay: window * 2}}
	ud, err := consumption.NewClient(mgmt.StaticToken(sb.Token()), &consumption.Options{Endpoint: sb.URL(), ClientOptions: co})
	if err != nil {
		t.Fatal(err)
	}
	usage := &export.UsageDetails{Client: ud, Version: ud.APIVersion(), Expand: "meterDetails,additionalInfo"}
	cd, err := costdetails.NewClient(mgmt.StaticToken(sb.Token()), &costdetails.Options{Endpoint: sb.URL(), ClientOptions: co,
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	cost := &export.CostDetails{Client: cd}
	st, err := store.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pick := func(p export.Partition, live *manifest.Manifest) (export.Source, string, error) {
		d := source.Choose(source.Input{Setting: setting, Scope: p.Scope, Period: p.Period, Metric: p.Metric, Now: now,
			Previous: live, Rate: float64(rate)})
		switch {
		case d.Source == source.CostDetails && d.InvoiceID != "":
			return cost.ForInvoice(d.InvoiceID), d.Reason, nil
		case d.Source == source.CostDetails:
			return cost, d.Reason, nil
		}
		return usage, d.Reason, nil
	}
	e := export.New(st, nil, &export.Options{Prefix: "usage", Pick: pick, Now: func() time.Time { return now }})
	var parts []export.Partition
	for _, p := range periods {
		parts = append(parts, export.Partition{Scope: sc, Period: p, Metric: "actualcost"})
	}
	start := time.Now()
	sum, err := e.Run(context.Background(), parts)
	if err != nil {
		t.Fatal(err)
	}
	res := result{wall: time.Since(start), calls: budget.Stats().Calls, rows: sum.Rows, failed: sum.Failed()}
	n := map[manifest.Source]int{}
	for _, r := range sum.Partitions {
		n[r.Source]++
		if r.Status == export.StatusCommitted {
			truth, err := sb.GroundTruth(r.Partition.Scope, r.Partition.Period, string(r.Partition.Metric))
			if err != nil {
				t.Fatal(err)
			}
			if r.Rows != int64(truth.Rows) {
				t.Errorf("%s %s via %s: %d rows, ground truth %d", sc, r.Period, r.Source, r.Rows, truth.Rows)
			}
		}
	}
	res.sources = fmt.Sprintf("usageDetails×%d costDetails×%d", n[manifest.SourceUsageDetails], n[manifest.SourceCostDetails])
	if setting == source.Auto && len(periods) == 1 {
		// A re-export follows the committed export's size; a closed billing-profile month is
		// asked for by its invoice.
		again, err := e.Run(context.Background(), parts)
		if err != nil || again.Failed() > 0 {
			t.Fatalf("re-export: %v %v", err, again.Err())
		}
		r := again.Partitions[0]
		if byInvoice := strings.Contains(r.Reason, "by invoice"); byInvoice != (kind == scope.BillingProfile && r.Source == manifest.SourceCostDetails) {
			t.Errorf("%s re-export: %s (%s)", kind, r.Source, r.Reason)
		}
		t.Logf("%s re-export: %s: %s", kind, r.Source, r.Reason)
	}
	return res
}
