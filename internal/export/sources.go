package export

import (
	"context"

	"github.com/usage-export/usage-export/internal/consumption"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/metric"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/scope"
)

// UsageDetails is the usageDetails source: one query per chunk, through the billing-period
// sub-scope when the chunk is a whole period of a scope that has one, else a date range.
type UsageDetails struct {
	Client  *consumption.Client
	Version string // API version the client uses
	Expand  string // $expand
	Top     int    // $top; 0 = the API's default
}

// Name implements Source.
func (u *UsageDetails) Name() manifest.Source { return manifest.SourceUsageDetails }

// APIVersion implements Source.
func (u *UsageDetails) APIVersion() string { return u.Version }

// Fetch implements Source.
func (u *UsageDetails) Fetch(ctx context.Context, c Chunk, h consumption.Handler) error {
	q := consumption.Query{Scope: c.Scope, Metric: c.Metric, Expand: u.Expand, Top: u.Top}
	if u.Version == "2018-06-30" && c.Metric == metric.ActualCost {
		q.Metric = "" // 2018-06-30 has no metric parameter; its records are actual cost
	}
	if c.ByPeriod {
		q.BillingPeriod = c.Period.String()
	} else {
		q.From, q.To = c.From, c.To
	}
	return u.Client.List(ctx, q, h)
}

// BillingPeriods implements PeriodLister.
func (u *UsageDetails) BillingPeriods(ctx context.Context, sub scope.Scope) ([]period.Period, error) {
	return u.Client.BillingPeriods(ctx, sub)
}
