// Package metric names the cost views the exporter exports: actualcost, amortizedcost, usage.
package metric

// Metric is a cost view of the usage details, as the usageDetails API's metric parameter and the
// output's metric=… partition folder spell it (lower case).
type Metric string

// The metrics.
const (
	ActualCost    Metric = "actualcost"    // charges as billed (the default)
	AmortizedCost Metric = "amortizedcost" // reservation and savings-plan purchases spread over their usage
	Usage         Metric = "usage"         // the usageDetails API's usage view (no Cost Details equivalent)
)

// All lists every metric, in the order settings and errors name them.
var All = []Metric{ActualCost, AmortizedCost, Usage}

// Strings returns ms as strings, for messages and flag help.
func Strings(ms []Metric) []string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = string(m)
	}
	return s
}
