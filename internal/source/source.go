// Package source decides which API exports a partition — the usageDetails listing or a Cost
// Details report — when the source setting is "auto": the one that costs the fewest ARM calls,
// then the one that finishes soonest, among those that serve the scope and the period.
package source

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/usage-export/usage-export/internal/consumption"
	"github.com/usage-export/usage-export/internal/costdetails"
	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/metric"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/scope"
)

// Source settings: the sources manifests record, and Auto.
const (
	Auto         = manifest.SourceAuto         // the default: Choose decides per partition
	UsageDetails = manifest.SourceUsageDetails // always the usageDetails listing
	CostDetails  = manifest.SourceCostDetails  // always Cost Details reports
)

// Settings lists the valid values of the source setting.
var Settings = []manifest.Source{Auto, UsageDetails, CostDetails}

// Valid reports whether s is a source setting ("" counts as Auto).
func Valid(s manifest.Source) bool {
	return s == "" || s == Auto || s == UsageDetails || s == CostDetails
}

// Estimates behind the choice.
const (
	// ReportCalls is the ARM calls of one Cost Details report: the POST and the polls until it is
	// ready (the published examples answer Retry-After 60 and reports take a minute or two, so
	// about three polls). The blob downloads are not ARM calls.
	ReportCalls = 4
	// DefaultReportTime is how long one report takes from POST to the last blob when
	// Input.ReportTime is zero: the polls' Retry-After (60 s in the published examples) times
	// the polls.
	DefaultReportTime = 3 * time.Minute
)

// Input is what the choice depends on.
type Input struct {
	// Setting is the source setting for this partition (Auto, UsageDetails or CostDetails;
	// "" = Auto).
	Setting manifest.Source
	Scope   scope.Scope
	Period  period.Period
	Metric  metric.Metric
	Now     time.Time
	// Previous is the live manifest of the partition, nil when there is none. Its row count
	// sizes the partition; its record kinds tell an MCA subscription.
	Previous *manifest.Manifest
	// Rate is the ARM calls per minute the scope may make (the per-scope-kind limit); 0 leaves
	// time out of the comparison and the partition in one listing.
	Rate float64
	// ReportTime is the expected wall time of one report (0 = DefaultReportTime).
	ReportTime time.Duration
}

// Decision is the chosen source and why.
type Decision struct {
	Source manifest.Source `json:"source"` // UsageDetails or CostDetails
	Reason string          `json:"reason"` // one sentence, for the job status, run summary and manifest
	// InvoiceID, with Cost Details, asks for the whole period by its MCA invoice: set for a
	// billing profile whose period has ended when the previous export's records name exactly one
	// invoice (an invoice holds the period's billed charges; the API takes invoiceId at billing
	// profile and customer scopes only).
	InvoiceID string `json:"invoiceId,omitempty"`
	// The estimates compared (zero when the choice did not need them).
	UsageDetailsCalls int           `json:"usageDetailsCalls,omitempty"`
	CostDetailsCalls  int           `json:"costDetailsCalls,omitempty"`
	UsageDetailsTime  time.Duration `json:"usageDetailsTime,omitempty"`
	CostDetailsTime   time.Duration `json:"costDetailsTime,omitempty"`
}

// Choose picks the source of one partition. A forced setting wins. Otherwise usageDetails is
// the only choice where Cost Details cannot serve: the usage metric, management groups,
// subscriptions not known to be EA or MCA, and periods that start before the oldest day a report
// may cover (13 months back from now, costdetails.Earliest). Where both serve (docs/sources.md):
//
//   - with a previous export, its rows (scaled to the days so far of an open period) size the
//     partition. A partition is one listing of ⌈rows/1000⌉ + 1 usageDetails calls, or one
//     report of ReportCalls calls; the exporter splits a listing too long for
//     export.DefaultListingTime at the scope's rate into steps, each one more listing or report.
//     Cost Details is chosen when it takes fewer ARM calls, or as many and less time (calls ÷
//     Rate, plus ReportTime per report): the partition is large, more than 3000 rows;
//   - without one, Cost Details for a period that has ended (its size unknown, a report costs
//     the same few calls whatever it holds), usageDetails for the open period (one listing, small
//     so far).
func Choose(in Input) Decision {
	switch in.Setting {
	case UsageDetails, CostDetails:
		return Decision{Source: in.Setting, Reason: fmt.Sprintf("source setting is %s", in.Setting)}
	}
	ud := func(why string, args ...any) Decision {
		return Decision{Source: UsageDetails, Reason: fmt.Sprintf(why, args...)}
	}
	if strings.EqualFold(string(in.Metric), string(metric.Usage)) {
		return ud("Cost Details has no usage metric")
	}
	switch {
	case in.Scope.Kind == scope.ManagementGroup:
		return ud("Cost Details does not serve management groups")
	case in.Scope.Kind == scope.Subscription && !modernRecords(in.Previous):
		return ud("Cost Details serves EA and MCA subscriptions only, and nothing shows this one is either (list it in USAGE_EXPORT_COSTDETAILS_SCOPES if it is)")
	}
	if earliest := costdetails.Earliest(in.Now); in.Period.Start().Before(earliest) {
		return ud("the period starts before %s, the oldest day a Cost Details report covers (13 months back from now)",
			earliest.Format(time.DateOnly))
	}
	ended := !in.Now.Before(in.Period.End())
	reportTime := in.ReportTime
	if reportTime <= 0 {
		reportTime = DefaultReportTime
	}
	if in.Previous == nil {
		if ended {
			return Decision{Source: CostDetails, Reason: fmt.Sprintf(
				"the period has ended and nothing is exported yet: one report, %d ARM calls whatever its size (usageDetails: one call per 1000 rows)", ReportCalls)}
		}
		return ud("the open period is not exported yet: one listing, small so far")
	}

	// Days to export: all of an ended period, the days so far of an open one.
	days := in.Period.Days()
	if !ended {
		days = int(in.Now.UTC().Truncate(24*time.Hour).Sub(in.Period.Start())/(24*time.Hour)) + 1
	}
	var rows float64
	if covered := coveredDays(in.Previous, in.Period); covered > 0 {
		rows = float64(in.Previous.DataRowCount) / float64(covered) * float64(days)
	}
	pages := int(math.Ceil(rows / consumption.MaxTop)) // records of one usageDetails call at most
	steps := 1
	if in.Rate > 0 {
		// As the exporter plans it (export.Exporter.plan): listings of at most ListingTime.
		steps = max(1, int(math.Ceil(float64(pages+1)/in.Rate/export.DefaultListingTime.Minutes())))
	}
	d := Decision{UsageDetailsCalls: pages + steps, CostDetailsCalls: steps * ReportCalls}
	d.CostDetailsTime = time.Duration(steps) * reportTime
	if in.Rate > 0 {
		d.UsageDetailsTime = time.Duration(float64(d.UsageDetailsCalls) / in.Rate * float64(time.Minute))
		d.CostDetailsTime += time.Duration(float64(d.CostDetailsCalls) / in.Rate * float64(time.Minute))
	}
	est := fmt.Sprintf("about %.0f rows in %d days: usageDetails %d ARM calls", rows, days, d.UsageDetailsCalls)
	if in.Rate > 0 {
		est += fmt.Sprintf(" (%s at %g/min)", d.UsageDetailsTime.Round(time.Second), in.Rate)
	}
	est += fmt.Sprintf(", Cost Details %d report(s), %d ARM calls (%s)", steps, d.CostDetailsCalls, d.CostDetailsTime.Round(time.Second))
	if d.CostDetailsCalls < d.UsageDetailsCalls || (d.CostDetailsCalls == d.UsageDetailsCalls && in.Rate > 0 && d.CostDetailsTime < d.UsageDetailsTime) {
		d.Source, d.Reason = CostDetails, "fewer ARM calls by Cost Details: "+est
		if in.Scope.Kind == scope.BillingProfile && ended && steps == 1 && len(in.Previous.InvoiceIDs) == 1 {
			d.InvoiceID = in.Previous.InvoiceIDs[0]
			d.Reason += "; by invoice " + d.InvoiceID
		}
	} else {
		d.Source, d.Reason = UsageDetails, "fewer ARM calls by usageDetails: "+est
	}
	return d
}

// coveredDays is how many days of p the manifest's export covered: up to its usage-date range's
// end (the whole period when it has rows past the end, or it was final when written).
func coveredDays(m *manifest.Manifest, p period.Period) int {
	if m.UsageDateRange == nil || m.DataRowCount == 0 {
		return 0
	}
	last, err := time.Parse(time.DateOnly, m.UsageDateRange.Max)
	if err != nil || !last.Before(p.End()) || m.PeriodStatus == period.Final {
		return p.Days()
	}
	if last.Before(p.Start()) {
		return 1
	}
	return int(last.Sub(p.Start())/(24*time.Hour)) + 1
}

// modernRecords reports whether the previous export holds MCA (modern) records only.
func modernRecords(m *manifest.Manifest) bool {
	if m == nil {
		return false
	}
	return m.RecordKinds["modern"] > 0 && m.RecordKinds["legacy"] == 0
}
