package sandbox

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/scope"
)

// The usageDetails endpoint:
//
//	GET {scope}/providers/Microsoft.Consumption/usageDetails?api-version=V[&$filter][&$top]
//	    [&$expand][&metric][&startDate&endDate][&$skiptoken&skiptokenver&id]
//
// Date selection (consumption-api.md §5):
//
//   - EA scopes (billing account, department, enrollment account, management group) take dates
//     from $filter (properties/usageStart, properties/usageEnd) and ignore startDate/endDate.
//   - MCA scopes (billing account, profile, invoice section, customer) and modern subscriptions
//     take startDate/endDate and ignore date terms in $filter (Azure/azure-rest-api-specs#11764);
//     their other $filter terms are honoured.
//   - Legacy subscriptions take both (a range from either; both ranges intersect). 2018-06-30
//     has no startDate/endDate.
//   - A complete range (both ends) wins over the billing-period sub-scope; otherwise the billing
//     period, otherwise the current month to date. A single $filter bound narrows that; a single
//     startDate or endDate is ignored (the docs' "period plus one date → that billing period").
//   - A range longer than 12 months, or ending before it starts, is a 400.
//   - Rows exist only from FirstMonth to Now's day.
//
// Metric: actualcost (default), amortizedcost, usage (the same rows as actualcost). 2018-06-30
// ignores metric (actual cost).
//
// Paging: $top (1..1000; default Options.PageSize) rows a page; nextLink carries the original
// query plus $skiptoken, skiptokenver=v1 and id; the last page has no nextLink. An empty result
// is 204 with no body from 2021-10-01 on, 200 {"value":[]} before.

// bufPool recycles page buffers.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1<<20); return &b }}

// parseScope splits the billing-period sub-scope off a scope path and parses the rest. It
// returns an HTTP status, error code and message on failure.
func parseScope(p string) (scope.Scope, string, int, string, string) {
	lower := strings.ToLower(p)
	bp := ""
	if i := strings.LastIndex(lower, periodInfix); i >= 0 && !strings.Contains(p[i+len(periodInfix):], "/") {
		bp = p[i+len(periodInfix):]
		p = p[:i]
	}
	sc, err := scope.Parse(p)
	if err != nil || strings.Contains(p, "//") || !strings.HasPrefix(p, "/") {
		return scope.Scope{}, "", http.StatusNotFound, "NotFound", fmt.Sprintf("The scope '%s' is not a usage details scope.", p)
	}
	if bp != "" {
		if sc.Channel() == scope.Modern {
			return scope.Scope{}, "", http.StatusBadRequest, "BadRequest",
				"Billing period is not supported for Microsoft Customer Agreement scopes. Use startDate and endDate instead."
		}
		if _, err := parseBillingPeriod(bp); err != nil {
			return scope.Scope{}, "", http.StatusBadRequest, "BadRequest", fmt.Sprintf("Invalid billing period '%s'.", bp)
		}
		sc.BillingPeriod = bp
	}
	return sc, bp, 0, "", ""
}

// parseBillingPeriod accepts yyyyMM, yyyyMMdd and pay-as-you-go yyyyMM-N names.
func parseBillingPeriod(bp string) (period.Period, error) {
	if len(bp) == 8 && !strings.Contains(bp, "-") {
		bp = bp[:6]
	}
	return period.Parse(bp)
}

// billingPeriodDays returns the first and last day of the billing period named bp for the
// subscriptions of a scope: a pay-as-you-go subscription's own period, else the calendar month.
func billingPeriodDays(bp string, sc scope.Scope, subs []*subscription) (time.Time, time.Time, bool) {
	if len(bp) == 8 && !strings.Contains(bp, "-") {
		bp = bp[:6]
	}
	if sc.Kind == scope.Subscription && len(subs) == 1 {
		return subs[0].periodNamed(bp)
	}
	p, err := period.Parse(bp)
	if err != nil || p.Suffix != "" {
		return time.Time{}, time.Time{}, false
	}
	return p.Start(), p.End().AddDate(0, 0, -1), true
}

func supportedVersions() string {
	names := make([]string, len(APIVersions))
	for i, v := range APIVersions {
		names[i] = v.Name
	}
	return strings.Join(names, ", ")
}

// checkVersion validates api-version and writes the 400 when it is missing or unknown.
func checkVersion(w http.ResponseWriter, got string, known func(string) bool, list string) bool {
	if got == "" {
		writeError(w, http.StatusBadRequest, "MissingApiVersionParameter",
			"The api-version query parameter (?api-version=) is required for all requests.")
		return false
	}
	if !known(got) {
		writeError(w, http.StatusBadRequest, "InvalidApiVersionParameter",
			fmt.Sprintf("The api-version '%s' is invalid. The supported versions are '%s'.", got, list))
		return false
	}
	return true
}

// dialect says which date parameters a scope honours.
type dialect struct{ filterDates, startEnd bool }

func dialectFor(sc scope.Scope, subs []*subscription, flat bool) dialect {
	switch {
	case flat:
		return dialect{filterDates: true}
	case sc.Channel() == scope.Legacy:
		return dialect{filterDates: true}
	case sc.Channel() == scope.Modern:
		return dialect{startEnd: true}
	case len(subs) == 1 && subs[0].modern:
		return dialect{startEnd: true}
	}
	return dialect{filterDates: true, startEnd: true}
}

func dayOf(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

func monthStart(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

func monthEnd(t time.Time) time.Time { return monthStart(t).AddDate(0, 1, -1) }

// badRequest is a 400 with its ARM code.
type badRequest struct{ code, msg string }

func (b *badRequest) Error() string { return b.msg }

// selectRange picks the days a request covers (see the package comment of this file), clipped
// to the data.
func (s *Server) selectRange(bp string, bpFirst, bpLast time.Time, f *filter, startDate, endDate string, d dialect, csp bool) (time.Time, time.Time, error) {
	today := dayOf(s.o.Now())
	var lo, hi time.Time
	given := false
	if d.startEnd && startDate != "" && endDate != "" {
		sd, err1 := time.Parse("2006-01-02", startDate)
		ed, err2 := time.Parse("2006-01-02", endDate)
		if err1 != nil || err2 != nil {
			return lo, hi, &badRequest{"BadRequest", fmt.Sprintf("Invalid startDate '%s' or endDate '%s': want yyyy-MM-dd.", startDate, endDate)}
		}
		if ed.Before(sd) {
			return lo, hi, &badRequest{"BadRequest", "The endDate must not be earlier than the startDate."}
		}
		lo, hi, given = sd, ed, true
	}
	if d.filterDates && f != nil && !f.from.IsZero() && !f.to.IsZero() {
		if f.to.Before(f.from) && !given {
			return lo, hi, &badRequest{"BadRequest", "The usageEnd bound of $filter is earlier than its usageStart bound."}
		}
		if given {
			lo, hi = later(lo, f.from), earlier(hi, f.to)
		} else {
			lo, hi, given = f.from, f.to, true
		}
	}
	if given && !hi.Before(lo.AddDate(0, maxRequestMonths, 0)) {
		return lo, hi, &badRequest{"BadRequest", fmt.Sprintf("The date range cannot exceed %d months.", maxRequestMonths)}
	}
	switch {
	case s.o.IgnoreDateFilter && csp && given:
		// A CSP scope with a date range "always returns the costs for the current period"
		// (Azure/azure-sdk-for-python#41864): another period altogether.
		lo, hi = monthStart(today), today
	case s.o.IgnoreDateFilter && bp != "":
		lo, hi = bpFirst, bpLast
	case s.o.IgnoreDateFilter && given:
		lo, hi = monthStart(lo), monthEnd(hi)
	case given:
	case bp != "":
		lo, hi = bpFirst, bpLast
	default:
		lo, hi = monthStart(today), today
	}
	if !s.o.IgnoreDateFilter && d.filterDates && f != nil && (f.from.IsZero() != f.to.IsZero()) {
		if !f.from.IsZero() {
			lo = later(lo, f.from)
		}
		if !f.to.IsZero() {
			hi = earlier(hi, f.to)
		}
	}
	lo = later(lo, s.firstMonth.Start())
	hi = earlier(hi, today)
	return lo, hi, nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func parseMetric(v string) (Metric, bool) {
	switch m := Metric(strings.ToLower(v)); m {
	case "":
		return MetricActualCost, true
	case MetricActualCost, MetricAmortizedCost, MetricUsage:
		return m, true
	}
	return "", false
}

func (s *Server) serveUsage(w http.ResponseWriter, r *http.Request, scopePath string) {
	q := r.URL.Query()
	req, ok := s.usageScope(w, q, scopePath)
	if !ok {
		return
	}
	key := strings.ToLower(req.sc.Path())
	s.stats.scope(key)
	canon := canonicalQuery(r.URL.Path, q)
	if req.cur, req.id, ok = s.usageCursor(w, q, canon); !ok {
		return
	}
	req.fault = s.faults.take(TargetUsage, req.cur.page, nil)
	if req.fault != "" && s.respondFault(w, req.fault) {
		return
	}
	if !s.throttle(w, key, req.sc.Kind, apiConsumption) {
		return
	}
	if !s.usageQuery(w, q, req) {
		return
	}
	bufp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bufp)
	body, n, next := s.usageRecords((*bufp)[:0], req)
	if n == 0 && req.cur.page == 0 && req.fault == "" && req.v.Has204 {
		*bufp = body
		w.WriteHeader(http.StatusNoContent)
		return
	}
	link := ""
	if next != nil || req.fault == NextLinkForeign {
		if req.id == "" {
			req.id = uuid.NewString()
		}
		c := pageCursor{pos: req.cur.pos, page: req.cur.page + 1}
		if next != nil {
			c.pos = *next
		}
		link = s.nextLink(baseURL(r), r.URL.EscapedPath(), r.URL.RawQuery, req.id, canon, c)
	}
	switch req.fault {
	case NextLinkLoop:
		link = baseURL(r) + r.URL.RequestURI()
	case NextLinkForeign:
		link = foreignHost(link)
	}
	if link != "" {
		body = append(body, `,"nextLink":`...)
		body = appendJSONString(body, link)
	}
	body = append(body, '}')
	*bufp = body
	s.stats.pages.Add(1)
	s.stats.records.Add(int64(n))
	if !s.sleep(r.Context(), s.o.PageLatency) {
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	s.writeBody(w, r, body, req.fault)
}

// usageRequest is a usageDetails request as serveUsage reads it.
type usageRequest struct {
	v           *APIVersion
	sc          scope.Scope
	bp          string // the billing period of a billingPeriods/{bp} scope path, or ""
	subs        []*subscription
	cur         pageCursor
	id          string // the listing's id (a nextLink's id parameter), "" on the first page
	fault       Fault
	top         int
	expandMeter bool
	dq          *dataQuery
}

// usageScope checks the api-version and the scope of a usageDetails request, answering the
// error itself when one is wrong.
func (s *Server) usageScope(w http.ResponseWriter, q url.Values, scopePath string) (*usageRequest, bool) {
	if !checkVersion(w, q.Get("api-version"), func(v string) bool { return lookupVersion(v) != nil }, supportedVersions()) {
		return nil, false
	}
	v := lookupVersion(q.Get("api-version"))
	sc, bp, status, code, msg := parseScope(scopePath)
	if status != 0 {
		writeError(w, status, code, msg)
		return nil, false
	}
	subs, err := s.w.resolve(sc)
	if err != nil {
		code := "NotFound"
		if sc.Kind == scope.Subscription {
			code = "SubscriptionNotFound"
		}
		writeError(w, http.StatusNotFound, code, fmt.Sprintf("The scope '%s' could not be found.", scopePath))
		return nil, false
	}
	if v.flat && (sc.Channel() == scope.Modern || subs[0].modern) {
		writeError(w, http.StatusBadRequest, "InvalidApiVersionParameter",
			fmt.Sprintf("The api-version '%s' does not support Microsoft Customer Agreement scopes. Use 2019-10-01 or later.", v.Name))
		return nil, false
	}
	if bp != "" && !v.flat && sc.Kind == scope.Subscription && subs[0].offer == OfferWebDirect {
		writeError(w, http.StatusBadRequest, "BadRequest", fmt.Sprintf("Billing Period is not supported in (%s) API Version for "+
			"Subscription Scope With Web Direct Offer. Please provide the UsageStart and UsageEnd dates in the $filter", v.Name))
		return nil, false
	}
	return &usageRequest{v: v, sc: sc, bp: bp, subs: subs}, true
}

// usageCursor reads the page cursor of a nextLink ($skiptoken and id); the first page has none.
func (s *Server) usageCursor(w http.ResponseWriter, q url.Values, canon string) (pageCursor, string, bool) {
	if !q.Has("$skiptoken") {
		return pageCursor{}, "", true
	}
	id := q.Get("id")
	c, ok := pageCursor{}, false
	if isGUID(id) {
		c, ok = s.decodeToken(id, canon, q.Get("$skiptoken"))
	}
	if !ok {
		writeError(w, http.StatusBadRequest, "400",
			fmt.Sprintf("id query parameter is not a valid Guid (Request ID: %s)", w.Header().Get("x-ms-request-id")))
		return pageCursor{}, "", false
	}
	return c, id, true
}

// usageQuery reads $top, metric, $apply, $expand, $filter and the date range of a usageDetails
// request into req, answering the error itself when one is wrong.
func (s *Server) usageQuery(w http.ResponseWriter, q url.Values, req *usageRequest) bool {
	req.top = s.o.PageSize
	if t := q.Get("$top"); t != "" || q.Has("$top") {
		n, err := strconv.Atoi(t)
		if err != nil || n < 1 || n > maxPageSize {
			writeError(w, http.StatusBadRequest, "BadRequest", fmt.Sprintf("Invalid $top value '%s': must be an integer between 1 and %d.", t, maxPageSize))
			return false
		}
		req.top = n
	}
	metric := MetricActualCost
	if !req.v.flat {
		m, ok := parseMetric(q.Get("metric"))
		if !ok {
			writeError(w, http.StatusBadRequest, "BadRequest",
				fmt.Sprintf("Invalid metric '%s'. Allowed values are actualcost, amortizedcost, usage.", q.Get("metric")))
			return false
		}
		metric = m
	}
	if q.Has("$apply") {
		writeError(w, http.StatusBadRequest, "BadRequest", "$apply is not supported by the sandbox.")
		return false
	}
	req.expandMeter = expandsMeter(q.Get("$expand"))
	var f *filter
	if fs := q.Get("$filter"); fs != "" {
		var err error
		if f, err = parseFilter(fs, req.v.flat); err != nil {
			writeError(w, http.StatusBadRequest, "BadRequest", "Invalid $filter: "+err.Error()+".")
			return false
		}
	}
	from, to, err := s.usageRange(q, req, f)
	if err != nil {
		br := err.(*badRequest)
		writeError(w, http.StatusBadRequest, br.code, br.msg)
		return false
	}
	req.dq = &dataQuery{w: s.w, subs: req.subs, from: from, to: to, metric: metric, perDay: s.o.RecordsPerDay}
	if f != nil && len(f.preds) > 0 {
		req.dq.match = f.match
	}
	return true
}

// usageRange is the date range a usageDetails request selects (selectRange), or a *badRequest.
func (s *Server) usageRange(q url.Values, req *usageRequest, f *filter) (time.Time, time.Time, error) {
	sc, subs, bp := req.sc, req.subs, req.bp
	d := dialectFor(sc, subs, req.v.flat)
	csp := sc.Kind == scope.Customer || (sc.Kind == scope.Subscription && subs[0].customer != nil)
	var bpFirst, bpLast time.Time
	if bp != "" {
		var ok bool
		if bpFirst, bpLast, ok = billingPeriodDays(bp, sc, subs); !ok {
			return time.Time{}, time.Time{}, &badRequest{"BadRequest", fmt.Sprintf("Invalid billing period '%s'.", bp)}
		}
	}
	return s.selectRange(bp, bpFirst, bpLast, f, q.Get("startDate"), q.Get("endDate"), d, csp)
}

// usageRecords appends the page's value array (from `{"value":[` to its `]`) to body: up to
// top records from the cursor, and the record of a new shape that the NewRecordShape fault adds.
// It returns the body, the records from the data, and the position of the next page's first
// record (nil at the end).
func (s *Server) usageRecords(body []byte, req *usageRequest) ([]byte, int, *position) {
	body = append(body, `{"value":[`...)
	n := 0
	var next *position
	var last row
	cm := s.currentMonth()
	req.dq.scanFrom(req.cur.pos, func(p position, rw *row) bool {
		if n == req.top {
			next = &p
			return false
		}
		if n > 0 {
			body = append(body, ',')
		}
		body = appendRecord(body, req.v, &recCtx{r: rw, expandMeter: req.expandMeter, open: rw.month == cm})
		last = *rw
		n++
		return true
	})
	if req.fault == NewRecordShape && n > 0 {
		fr := last
		fr.cost, fr.costUSD, fr.costBilling, fr.paygUSD, fr.paygBilling = dec{}, dec{}, dec{}, dec{}, dec{}
		fr.lo ^= 0xfeed
		body = append(body, ',')
		body = appendRecordKind(body, req.v, &recCtx{r: &fr, open: fr.month == cm}, "future",
			`"futureProperty":{"tier":"preview","weights":[1,2,3]}`)
	}
	return append(body, ']'), n, next
}

// expandsMeter reports whether a $expand value asks for the meter details: "meterDetails" or
// "properties/meterDetails" among its comma-separated terms, in any case.
func expandsMeter(expand string) bool {
	for _, term := range strings.Split(expand, ",") {
		term = strings.ToLower(strings.TrimSpace(term))
		if term == "meterdetails" || term == "properties/meterdetails" {
			return true
		}
	}
	return false
}

// currentMonth is Now's month as yyyymm.
func (s *Server) currentMonth() int {
	t := s.o.Now().UTC()
	return t.Year()*100 + int(t.Month())
}

// foreignHost moves a link to 127.0.0.2 (same port): another host, still loopback.
func foreignHost(link string) string {
	u, err := url.Parse(link)
	if err != nil {
		return link
	}
	port := u.Port()
	u.Host = "127.0.0.2"
	if port != "" {
		u.Host = net.JoinHostPort("127.0.0.2", port)
	}
	return u.String()
}

// throttle applies the rate limits to a call on key, a scope of kind k, of API a, and writes
// the remaining-quota headers. On 429 it writes the retry hint as the API does: usageDetails the
// consumption header only (no Retry-After), Cost Details Retry-After; with
// Options.ThrottleWithoutHeaders neither, only the "Please retry after N seconds." message.
func (s *Server) throttle(w http.ResponseWriter, key string, k scope.Kind, a api) bool {
	ok, wait, remaining, scopeLeft := s.lim.allow(s.o.Clock(), key, k)
	setRemaining(w.Header(), a, remaining, scopeLeft)
	if ok {
		return true
	}
	s.stats.throttled.Add(1)
	secs := strconv.Itoa(max(int(math.Ceil(wait.Seconds())), 1))
	if !s.o.ThrottleWithoutHeaders {
		header := hdrConsumptionRetryAfter
		if a == apiCostManagement {
			header = "Retry-After"
		}
		setRetryHeaders(w.Header(), header, wait)
	}
	writeError(w, http.StatusTooManyRequests, "429", "Too many requests. Please retry after "+secs+" seconds.")
	return false
}
