package costdetails

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/usage-export/usage-export/internal/metric"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/scope"
)

// Metrics of the API (the request body's metric).
const (
	MetricActualCost    = "ActualCost"
	MetricAmortizedCost = "AmortizedCost"
)

// MaxAgeMonths is how far back the API serves data: a report must start after the instant
// MaxAgeMonths months before now (azure-in-production.md §6: "Start date must be after …").
const MaxAgeMonths = 13

// dateLayout is the layout of timePeriod dates.
const dateLayout = "2006-01-02"

// invoiceIDPattern bounds an invoice id (e.g. "M1234567", "G123456789").
var invoiceIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,63}$`)

// Request is one report: a scope, a metric, and exactly one of a billing period (EA scopes), a
// range of days (at most one month) or an invoice id (MCA billing profile or customer).
type Request struct {
	Scope  scope.Scope
	Metric string // MetricActualCost or MetricAmortizedCost

	// BillingPeriod asks for one EA billing period ("billingPeriod": "YYYYMM").
	BillingPeriod period.Period
	// Start and End ask for a range of whole days, both inclusive ("timePeriod").
	Start, End time.Time
	// InvoiceID asks for the charges of one MCA invoice ("invoiceId").
	InvoiceID string
}

// Earliest returns the first day the API serves at now: the first UTC day whose midnight is
// after now minus MaxAgeMonths months. The service counts the 13 months back from now, not in
// calendar months, so the oldest month of a 13-month window is only partly requestable for most
// of each month (and a billing period or invoice whose first day is older is refused whole).
func Earliest(now time.Time) time.Time {
	return day(now.UTC().AddDate(0, -MaxAgeMonths, 0)).AddDate(0, 0, 1)
}

// MetricOf maps the exporter's metric names (actualcost, amortizedcost; any letter case) to the
// API's. The usage metric has no Cost Details equivalent and is an error.
func MetricOf(m metric.Metric) (string, error) {
	switch metric.Metric(strings.ToLower(string(m))) {
	case metric.ActualCost:
		return MetricActualCost, nil
	case metric.AmortizedCost:
		return MetricAmortizedCost, nil
	case metric.Usage:
		return "", fmt.Errorf("%w: metric %q: Cost Details has no usage metric (only ActualCost and AmortizedCost); use the usageDetails source for it",
			ErrInvalidRequest, m)
	default:
		return "", fmt.Errorf("%w: metric %q: want %s or %s", ErrInvalidRequest, m, metric.ActualCost, metric.AmortizedCost)
	}
}

// Validate checks r against what the API accepts at now and returns every problem at once,
// each wrapping ErrInvalidRequest. No call is made for a request that fails it.
func (r Request) Validate(now time.Time) error {
	var problems []error
	bad := func(format string, args ...any) {
		problems = append(problems, fmt.Errorf("%w: "+format, append([]any{ErrInvalidRequest}, args...)...))
	}
	switch {
	case r.Scope.IsZero():
		bad("no scope")
	case r.Scope.Kind == scope.ManagementGroup:
		bad("scope %s: the Cost Details API does not support management group scopes; use the usageDetails source or list the subscriptions", r.Scope)
	}
	if r.Metric != MetricActualCost && r.Metric != MetricAmortizedCost {
		bad("metric %q: want %s or %s", r.Metric, MetricActualCost, MetricAmortizedCost)
	}
	earliest := Earliest(now)
	tooOld := func(start time.Time) {
		if start.Before(earliest) {
			bad("start %s is older than the API serves (%d months: nothing before %s)",
				start.Format(dateLayout), MaxAgeMonths, earliest.Format(dateLayout))
		}
	}
	hasRange := !r.Start.IsZero() || !r.End.IsZero()
	n := 0
	for _, set := range []bool{!r.BillingPeriod.IsZero(), hasRange, r.InvoiceID != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		bad("want exactly one of billing period, time period or invoice id, got %d", n)
	}
	if !r.BillingPeriod.IsZero() {
		if r.Scope.Channel() != scope.Legacy {
			bad("billing period %s: only EA scopes (billing account, department, enrollment account) take a billing period; use a time period", r.BillingPeriod)
		}
		tooOld(r.BillingPeriod.Start())
	}
	if hasRange {
		start, end := day(r.Start), day(r.End)
		switch {
		case r.Start.IsZero() || r.End.IsZero():
			bad("time period needs both a start and an end")
		case end.Before(start):
			bad("time period %s..%s ends before it starts", start.Format(dateLayout), end.Format(dateLayout))
		case !end.Before(start.AddDate(0, 1, 0)):
			bad("time period %s..%s is longer than one month, the most one report may cover", start.Format(dateLayout), end.Format(dateLayout))
		default:
			tooOld(start)
		}
	}
	if r.InvoiceID != "" {
		if r.Scope.Kind != scope.BillingProfile && r.Scope.Kind != scope.Customer {
			bad("invoice id: only MCA billing profile and customer scopes take an invoice id")
		}
		if !invoiceIDPattern.MatchString(r.InvoiceID) {
			bad("invoice id %q: want letters, digits and '-'", r.InvoiceID)
		}
	}
	return errors.Join(problems...)
}

// day returns the UTC calendar day of t at midnight.
func day(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// requestBody is GenerateCostDetailsReportRequestDefinition.
type requestBody struct {
	Metric        string      `json:"metric"`
	TimePeriod    *timePeriod `json:"timePeriod,omitempty"`
	BillingPeriod string      `json:"billingPeriod,omitempty"`
	InvoiceID     string      `json:"invoiceId,omitempty"`
}

type timePeriod struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

// body returns the JSON request body of a validated request.
func (r Request) body() ([]byte, error) {
	b := requestBody{Metric: r.Metric, InvoiceID: r.InvoiceID}
	if !r.BillingPeriod.IsZero() {
		b.BillingPeriod = r.BillingPeriod.String()
	}
	if !r.Start.IsZero() {
		b.TimePeriod = &timePeriod{Start: day(r.Start).Format(dateLayout), End: day(r.End).Format(dateLayout)}
	}
	return json.Marshal(b)
}

// describe names what the request covers, for logs and errors.
func (r Request) describe() string {
	switch {
	case !r.BillingPeriod.IsZero():
		return "billing period " + r.BillingPeriod.String()
	case r.InvoiceID != "":
		return "invoice " + r.InvoiceID
	default:
		return day(r.Start).Format(dateLayout) + ".." + day(r.End).Format(dateLayout)
	}
}
