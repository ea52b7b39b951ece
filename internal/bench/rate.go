package bench

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/sandbox"
	"github.com/usage-export/usage-export/internal/scope"
)

// RateScenario is the rate-limited run: the sandbox enforces a call rate per scope (and one for
// the tenant) over a window scaled down from a minute, and delays every page; the exporter gets
// the same budget. Its wall time is compared with the lower bound the limits allow.
type RateScenario struct {
	Scopes        []scope.Scope
	Periods       int           // the last Periods complete billing periods
	RecordsPerDay int           // sandbox records per subscription-day
	PageSize      int           // records per page (the sandbox's page size)
	PerScope      int           // calls per Window per scope
	PerTenant     int           // calls per Window for the tenant (0 = no tenant limit)
	Window        time.Duration // the sandbox's rate window
	PageLatency   time.Duration // delay before each page's first byte
	Concurrency   int           // the exporter's chunks in flight
}

// DefaultRateScenario: two EA departments × two billing periods (four partitions, all in flight
// under the exporter's default of four partitions at a time), 60 calls a second per scope over a
// 10-second sliding window (600 calls; the real limit is 30 calls over one minute), 50 ms before
// each page of 50 records, about twenty seconds at the limit. The window is scaled down less
// than the rate: the exporter spaces its calls 1% under the limit, and on a 1-second window that
// margin (10 ms) is below the scheduling jitter of a loaded machine, so arrivals would bunch
// into 429s that the real one-minute window (600 ms margin) never sees.
var DefaultRateScenario = RateScenario{
	Scopes: []scope.Scope{
		scope.MustParse("/providers/Microsoft.Billing/departments/301001"),
		scope.MustParse("/providers/Microsoft.Billing/departments/301002"),
	},
	Periods: 2, RecordsPerDay: 250, PageSize: 50,
	PerScope: 600, PerTenant: 2000, Window: 10 * time.Second, PageLatency: 50 * time.Millisecond,
	Concurrency: 16,
}

// RateResult is what the rate-limited run adds to its row.
type RateResult struct {
	Pages      int64         // usageDetails pages served
	Throttled  int64         // 429s the sandbox answered
	LowerBound time.Duration // pages ÷ allowed rate: the busiest scope's pages at the scope rate, or all pages at the tenant rate
}

// rateLimited runs the rate-limited scenario; its row carries the utilisation.
func (r *runner) rateLimited(ctx context.Context, rs RateScenario, last period.Period) error {
	sb, err := sandbox.New(&sandbox.Options{
		RecordsPerDay: rs.RecordsPerDay, PageSize: rs.PageSize,
		RatePerScope: rs.PerScope, RatePerTenant: rs.PerTenant, RateWindow: rs.Window, PageLatency: rs.PageLatency,
	})
	if err != nil {
		return fmt.Errorf("bench: rate-limited sandbox: %w", err)
	}
	if err := sb.Start(); err != nil {
		return fmt.Errorf("bench: rate-limited sandbox: %w", err)
	}
	defer sb.Close()
	var periods []period.Period
	for i := rs.Periods - 1; i >= 0; i-- {
		periods = append(periods, last.Add(-i))
	}
	// The exporter's budget is in calls a minute over a one-minute window, spaced evenly: the
	// same spacing as PerScope calls per Window.
	perMinute := func(n int) int { return int(float64(n) * float64(time.Minute) / float64(rs.Window)) }
	ex := exportRun{
		scopes: rs.Scopes, periods: periods, out: outputDir(r.o.WorkDir + "/rate"),
		ratePerScope: perMinute(rs.PerScope), rateTenant: unlimitedRate, concurrency: rs.Concurrency,
	}
	if rs.PerTenant > 0 {
		ex.rateTenant = perMinute(rs.PerTenant)
	}
	name := fmt.Sprintf("rate-limited: %d scopes × %d periods, %d/s per scope, %v/page",
		len(rs.Scopes), rs.Periods, int(float64(rs.PerScope)/rs.Window.Seconds()), rs.PageLatency)
	row, sum, err := r.export(ctx, name, sb, ex)
	if err != nil {
		return err
	}
	st := sb.Stats()
	var busiest int64
	for key, n := range st.ByScope {
		for _, s := range rs.Scopes {
			if strings.EqualFold(key, s.String()) || strings.HasPrefix(strings.ToLower(key), strings.ToLower(s.String())+"/") {
				busiest = max(busiest, n)
			}
		}
	}
	rate := rs.Window / time.Duration(rs.PerScope) // time per call
	bound := time.Duration(busiest) * rate
	if rs.PerTenant > 0 {
		bound = max(bound, time.Duration(st.Pages)*(rs.Window/time.Duration(rs.PerTenant)))
	}
	row.Rate = &RateResult{Pages: st.Pages, Throttled: st.Throttled, LowerBound: bound}
	if sum.Budget.Calls > st.Pages+st.Throttled {
		return fmt.Errorf("bench: %s: the exporter made %d calls, the sandbox saw %d", name, sum.Budget.Calls, st.Pages+st.Throttled)
	}
	r.add(row)
	return nil
}
