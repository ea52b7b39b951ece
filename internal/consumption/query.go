package consumption

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/usage-export/usage-export/internal/metric"
	"github.com/usage-export/usage-export/internal/mgmt"
	"github.com/usage-export/usage-export/internal/scope"
)

// Query selects the usage details of one scope. The zero values of the optional fields leave
// the corresponding parameter out.
type Query struct {
	Scope scope.Scope
	// BillingPeriod is the billing-period sub-scope name (yyyyMM, yyyyMMdd or yyyyMM-N), or "" to use
	// Scope.BillingPeriod (which may be "" too). MCA scopes have no billing-period sub-scope.
	BillingPeriod string
	// Metric is "" (the API default) or one of metric.All (matched without regard to case, sent
	// in lower case). 2018-06-30 has no metric: only "" or metric.ActualCost.
	Metric metric.Metric
	// Expand is sent as $expand. "" sends DefaultExpand(api-version): the meter details and the
	// additional info, in the api-version's own spelling. ExpandNone sends no $expand.
	Expand string
	// Top is sent as $top: 1..1000, or 0 to leave it out.
	Top int
	// From and To are the inclusive usage-date range; only their UTC dates are used. Both or
	// neither must be set. Legacy scopes get a $filter on properties/usageStart and
	// properties/usageEnd, modern scopes startDate/endDate, subscriptions (either channel) both.
	From, To time.Time
	// Filter holds extra $filter terms, joined to the date terms with "and". Modern (MCA)
	// scopes ignore $filter, so a Filter on them is refused.
	Filter string
	// NextLink resumes a listing: the first request goes to this link, which must point at the
	// configured endpoint like any nextLink. The other fields are then not used for the request.
	NextLink string
}

// ExpandNone as Query.Expand sends no $expand at all.
const ExpandNone = "none"

// DefaultExpand returns the $expand sent when Query.Expand is "": the meter details (without
// them, legacy EA records carry only meterId, no meter name or category) and the additional
// info, spelled as the api-version names them (2018-06-30 calls the latter
// additionalProperties), in the form Microsoft's own runbook sends.
func DefaultExpand(apiVersion string) string {
	if apiVersion == apiVersionNoMetric {
		return "properties/meterDetails,properties/additionalProperties"
	}
	return "properties/meterDetails,properties/additionalInfo"
}

// MaxTop is the largest page size the API accepts for $top.
const MaxTop = 1000

// Query parameter names, exactly as the API spells them.
const (
	paramAPIVersion = "api-version"
	paramExpand     = "$expand"
	paramFilter     = "$filter"
	paramTop        = "$top"
	paramMetric     = "metric"
	paramStartDate  = "startDate"
	paramEndDate    = "endDate"
)

// Date-filter fields and the date layout of every date parameter.
const (
	filterUsageStart = "properties/usageStart"
	filterUsageEnd   = "properties/usageEnd"
	dateLayout       = "2006-01-02"
)

// usagePath is appended to the (period) scope path.
const usagePath = "/providers/Microsoft.Consumption/usageDetails"

// periodName bounds a billing-period sub-scope name, which goes into the path unescaped.
var periodName = regexp.MustCompile(`^[0-9]{6}([0-9]{2}|-[0-9]{1,3})?$`)

// firstURL returns the URL of the first request of q: q.NextLink when set, otherwise the URL
// built from the query.
func (c *Client) firstURL(q Query) (string, error) {
	if q.NextLink != "" {
		if err := c.checkLink(q.NextLink); err != nil {
			return "", fmt.Errorf("resume nextLink %s: %w", mgmt.RedactURL(q.NextLink), err)
		}
		return q.NextLink, nil
	}
	return c.buildURL(q)
}

// buildURL validates q and returns endpoint + period scope path + usagePath + query. The scope
// path is inserted raw (the API marks it x-ms-skip-url-encoding); query values are
// percent-encoded (spaces as %20, '/' as %2F), leaving quotes readable as in the API docs.
func (c *Client) buildURL(q Query) (string, error) {
	v, err := c.check(q)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidQuery, err)
	}
	var b strings.Builder
	b.WriteString(c.endpoint)
	b.WriteString(q.Scope.PeriodPath(v.period))
	b.WriteString(usagePath)
	sep := byte('?')
	add := func(name, value string) {
		b.WriteByte(sep)
		sep = '&'
		b.WriteString(name)
		b.WriteByte('=')
		b.WriteString(escapeQueryValue(value))
	}
	switch expand := strings.TrimSpace(q.Expand); {
	case expand == "":
		add(paramExpand, DefaultExpand(c.apiVersion))
	case !strings.EqualFold(expand, ExpandNone):
		add(paramExpand, expand)
	}
	if f := v.filter(); f != "" {
		add(paramFilter, f)
	}
	if q.Top > 0 {
		add(paramTop, strconv.Itoa(q.Top))
	}
	if v.metric != "" {
		add(paramMetric, string(v.metric))
	}
	if v.dateParams {
		add(paramStartDate, v.from)
		add(paramEndDate, v.to)
	}
	add(paramAPIVersion, c.apiVersion)
	return b.String(), nil
}

// checkedQuery is what the URL of a valid Query is built from.
type checkedQuery struct {
	period   string        // billing-period sub-scope name, "" for none
	metric   metric.Metric // in lower case, "" to leave it out
	from, to string        // the usage-date range as dateLayout, "" for none
	extra    string        // the caller's $filter terms, trimmed
	// The date dialect: $filter for legacy (and every 2018-06-30 scope), startDate/endDate for
	// modern, both for a subscription, whose channel depends on its offer.
	dateFilter, dateParams bool
}

// filter returns the $filter value: the date terms and the caller's, joined with "and".
func (v checkedQuery) filter() string {
	var terms []string
	if v.dateFilter {
		terms = append(terms,
			fmt.Sprintf("%s ge '%s'", filterUsageStart, v.from),
			fmt.Sprintf("%s le '%s'", filterUsageEnd, v.to))
	}
	if v.extra != "" {
		terms = append(terms, v.extra)
	}
	return strings.Join(terms, " and ")
}

// check validates q against the client's api-version; the error says what is wrong (buildURL
// wraps it in ErrInvalidQuery).
func (c *Client) check(q Query) (checkedQuery, error) {
	if q.Scope.IsZero() {
		return checkedQuery{}, errors.New("no scope")
	}
	legacyVersion := c.apiVersion == apiVersionNoMetric
	channel := q.Scope.Channel()
	if legacyVersion && channel == scope.Modern {
		return checkedQuery{}, fmt.Errorf("api version %s has no MCA scopes (%s); use 2019-10-01 or later", c.apiVersion, q.Scope.Kind)
	}
	var v checkedQuery
	var err error
	if v.period, err = queryPeriod(q); err != nil {
		return checkedQuery{}, err
	}
	if v.metric, err = c.queryMetric(q); err != nil {
		return checkedQuery{}, err
	}
	if q.Top < 0 || q.Top > MaxTop {
		return checkedQuery{}, fmt.Errorf("top %d: want 1..%d, or 0 to leave it out", q.Top, MaxTop)
	}
	if v.from, v.to, err = queryDates(q); err != nil {
		return checkedQuery{}, err
	}
	v.extra = strings.TrimSpace(q.Filter)
	if v.extra != "" && channel == scope.Modern {
		return checkedQuery{}, fmt.Errorf("$filter is ignored by MCA (modern) scopes such as %s; filter the records instead", q.Scope.Kind)
	}
	v.dateFilter = v.from != "" && (channel != scope.Modern || legacyVersion)
	v.dateParams = v.from != "" && channel != scope.Legacy && !legacyVersion
	return v, nil
}

// queryPeriod returns the billing-period sub-scope of q (q.BillingPeriod, else the scope's), ""
// for none.
func queryPeriod(q Query) (string, error) {
	period := q.BillingPeriod
	if period == "" {
		period = q.Scope.BillingPeriod
	}
	if period != "" {
		if !periodName.MatchString(period) {
			return "", fmt.Errorf("billing period %q is not yyyyMM (or yyyyMM-N)", period)
		}
		if !q.Scope.SupportsBillingPeriod() {
			return "", fmt.Errorf("%s scopes have no billing-period sub-scope; use From/To", q.Scope.Kind)
		}
	}
	return period, nil
}

// queryMetric returns the metric parameter of q in lower case, "" to leave it out (always with
// 2018-06-30, which has none).
func (c *Client) queryMetric(q Query) (metric.Metric, error) {
	m := metric.Metric(strings.ToLower(string(q.Metric)))
	switch m {
	case "", metric.ActualCost, metric.AmortizedCost, metric.Usage:
	default:
		return "", fmt.Errorf("metric %q: want %q, %q or %q", q.Metric, metric.ActualCost, metric.AmortizedCost, metric.Usage)
	}
	if c.apiVersion == apiVersionNoMetric {
		if m != "" && m != metric.ActualCost {
			return "", fmt.Errorf("api version %s has no metric parameter: only actual cost is available, not %q", c.apiVersion, q.Metric)
		}
		m = ""
	}
	return m, nil
}

// queryDates returns q's usage-date range as dateLayout dates, "" and "" for none.
func queryDates(q Query) (from, to string, err error) {
	if q.From.IsZero() != q.To.IsZero() {
		return "", "", errors.New("set both From and To, or neither (the API ignores a one-sided range)")
	}
	if q.From.IsZero() {
		return "", "", nil
	}
	from, to = q.From.UTC().Format(dateLayout), q.To.UTC().Format(dateLayout)
	if to < from {
		return "", "", fmt.Errorf("date range %s..%s ends before it starts", from, to)
	}
	return from, to, nil
}

// escapeQueryValue percent-encodes a query value: everything but letters, digits, "-._~" and
// the sub-delimiters that are safe inside a value ('()*!,:@) becomes %XX. Spaces are %20, not
// '+', and '/' is %2F, as in the API's documented examples.
func escapeQueryValue(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + len(s)/4)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isQuerySafe(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

func isQuerySafe(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~'()*!,:@", c) >= 0
}

// checkLink validates a nextLink before it is requested: an absolute URL on the configured
// endpoint's scheme and host, without user information.
func (c *Client) checkLink(link string) error {
	u, err := url.Parse(link)
	if err != nil {
		return mgmt.Permanent(fmt.Errorf("%w: not a URL", mgmt.ErrForeignHost))
	}
	if !u.IsAbs() || u.Host == "" {
		return mgmt.Permanent(fmt.Errorf("%w: not an absolute URL", mgmt.ErrForeignHost))
	}
	if got := mgmt.OriginOf(u); got != c.origin || u.User != nil {
		return mgmt.Permanent(fmt.Errorf("%w: it points at %s, and requests (with the token) go only to %s",
			mgmt.ErrForeignHost, got, c.origin))
	}
	return nil
}
