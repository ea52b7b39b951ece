package export

import (
	"context"
	"fmt"

	"github.com/usage-export/usage-export/internal/consumption"
	"github.com/usage-export/usage-export/internal/costdetails"
	"github.com/usage-export/usage-export/internal/paging"
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
func (u *UsageDetails) Name() string { return SourceUsageDetails }

// APIVersion implements Source.
func (u *UsageDetails) APIVersion() string { return u.Version }

// Fetch implements Source.
func (u *UsageDetails) Fetch(ctx context.Context, c Chunk, h paging.Handler) error {
	q := consumption.Query{Scope: c.Scope, Metric: c.Metric, Expand: u.Expand, Top: u.Top}
	if u.Version == "2018-06-30" && c.Metric == "actualcost" {
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

// CostDetails is the Cost Details source: one report per chunk, streamed to the exporter row by
// row (costdetails.Client.Report). A whole-period chunk of an EA scope (billing account,
// department, enrollment account) asks for the billing period; any other chunk asks for its
// days (the client cuts a range at today). The metric maps actualcost → ActualCost and
// amortizedcost → AmortizedCost; usage, management group scopes, and days the API does not
// serve are errors before any call.
type CostDetails struct {
	Client *costdetails.Client
	// InvoiceID, when set, asks for a whole-period chunk of an MCA billing profile or customer
	// by its invoice ("invoiceId": the charges billed on it) instead of by days; other chunks
	// are asked for as without it. internal/source picks the invoice from the previous export's
	// records.
	InvoiceID string
}

// Name implements Source.
func (s *CostDetails) Name() string { return SourceCostDetails }

// APIVersion implements Source.
func (s *CostDetails) APIVersion() string { return s.Client.APIVersion() }

// ForInvoice returns the source that asks for a whole-period chunk of an MCA billing profile or
// customer by the invoice invoiceID (see InvoiceID).
func (s *CostDetails) ForInvoice(invoiceID string) Source {
	return &CostDetails{Client: s.Client, InvoiceID: invoiceID}
}

// Fetch implements Source.
func (s *CostDetails) Fetch(ctx context.Context, ch Chunk, h paging.Handler) error {
	r, err := s.request(ch)
	if err != nil {
		return fmt.Errorf("cost details report: %w", err)
	}
	return s.Client.Report(ctx, r, h)
}

// request builds the report request of a chunk.
func (s *CostDetails) request(ch Chunk) (costdetails.Request, error) {
	metric, err := costdetails.MetricOf(ch.Metric)
	if err != nil {
		return costdetails.Request{}, err
	}
	r := costdetails.Request{Scope: ch.Scope, Metric: metric}
	switch {
	case ch.Whole && s.InvoiceID != "" && (ch.Scope.Kind == scope.BillingProfile || ch.Scope.Kind == scope.Customer):
		r.InvoiceID = s.InvoiceID
	case ch.Whole && ch.Scope.Channel() == scope.Legacy && !ch.Period.IsZero():
		r.BillingPeriod = ch.Period
	default:
		r.Start, r.End = ch.From, ch.To
		if r.Start.IsZero() && r.End.IsZero() && !ch.Period.IsZero() {
			r.Start, r.End = ch.Period.Start(), ch.Period.End().AddDate(0, 0, -1)
		}
	}
	return r, nil
}
