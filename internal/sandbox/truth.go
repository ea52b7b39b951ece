package sandbox

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/scope"
)

// Truth describes the exact record set of a scope, billing period and metric.
type Truth struct {
	Rows int `json:"rows"`
	// Sums maps a currency to the exact decimal sum of the rows' cost field: legacy `cost`,
	// modern `costInBillingCurrency`, 2018-06-30 `pretaxCost`; the currency is the row's
	// billingCurrency / billingCurrencyCode / currency. Sums are decimal strings without exponent
	// and with trailing zeros trimmed ("12.5", "0"). Empty map for no rows.
	Sums map[string]string `json:"sums"`
	// USDSum is the exact sum of costInUSD over the modern rows ("" when there are none).
	USDSum string `json:"usdSum"`
	// Hash identifies the record set independently of its order: the lower-case hex SHA-256 of
	// the concatenation, in ascending order, of each record's lower-case hex SHA-256 followed by
	// "\n", where a record's bytes are its compact JSON exactly as the usageDetails API serves it
	// in the given api-version without $expand (GroundTruthExpand: with the given $expand). A client that keeps each record's raw bytes (or
	// re-compacts them without HTML escaping) can recompute it. No rows: SHA-256 of "".
	Hash string `json:"hash"`
	// Kinds counts the rows by record kind: "legacy", "modern", or "" (2018-06-30 has no kind).
	Kinds map[string]int `json:"kinds"`
	// MinDate and MaxDate are the first and last usage days covered (YYYY-MM-DD), "" for no rows.
	MinDate string `json:"minDate"`
	MaxDate string `json:"maxDate"`
}

// ErrUnknownScope is returned for a scope the synthetic world does not have.
var ErrUnknownScope = errors.New("sandbox: unknown scope")

// GroundTruth is GroundTruthVersion with the latest api-version's record shapes.
func (s *Server) GroundTruth(sc scope.Scope, p period.Period, metric string) (Truth, error) {
	return s.GroundTruthVersion(sc, p, metric, LatestAPIVersion)
}

// GroundTruthVersion returns the truth of every row of scope sc in the days of p — a calendar
// month, or a pay-as-you-go subscription's own period as BillingPeriod returns it — (clipped to
// the data: FirstMonth to Now's day) for metric ("actualcost" when empty; "usage" has the same
// rows as "actualcost"), with records in the shape of apiVersion. The row set and sums do not
// depend on the api-version; Hash and Kinds do, through the record shape. The scope's
// billing-period sub-scope, if any, is ignored: p selects the month. Cost Details reports for the
// same scope, month and metric contain exactly these rows.
func (s *Server) GroundTruthVersion(sc scope.Scope, p period.Period, metric, apiVersion string) (Truth, error) {
	return s.GroundTruthExpand(sc, p, metric, apiVersion, "")
}

// GroundTruthExpand is GroundTruthVersion for records requested with $expand=expand: the Hash
// covers the records as the API serves them for that $expand (meterDetails filled when it names
// meterDetails). Rows, sums and kinds do not depend on it.
func (s *Server) GroundTruthExpand(sc scope.Scope, p period.Period, metric, apiVersion, expand string) (Truth, error) {
	v := lookupVersion(apiVersion)
	if v == nil {
		return Truth{}, fmt.Errorf("ground truth: unknown api-version %q", apiVersion)
	}
	m, ok := parseMetric(metric)
	if !ok {
		return Truth{}, fmt.Errorf("ground truth: unknown metric %q", metric)
	}
	subs, err := s.w.resolve(sc)
	if err != nil {
		return Truth{}, fmt.Errorf("ground truth %s: %w", sc, ErrUnknownScope)
	}
	if v.flat && (sc.Channel() == scope.Modern || subs[0].modern) {
		return Truth{}, fmt.Errorf("ground truth %s: api-version %s has no MCA records", sc, apiVersion)
	}
	from, to := s.clipDays(p.Start(), p.End().AddDate(0, 0, -1))
	dq := &dataQuery{w: s.w, subs: subs, from: from, to: to, metric: m, perDay: s.o.RecordsPerDay}
	return s.truthOf(dq, v, expandsMeter(expand)), nil
}

// clipDays limits a day range to the days that have data.
func (s *Server) clipDays(from, to time.Time) (time.Time, time.Time) {
	return later(from, s.firstMonth.Start()), earlier(to, dayOf(s.o.Now()))
}

func (s *Server) truthOf(dq *dataQuery, v *APIVersion, expandMeter bool) Truth {
	t := Truth{Sums: map[string]string{}, Kinds: map[string]int{}}
	sums := map[string]*decSum{}
	var usd *decSum
	var digests []string
	var buf []byte
	var minDay, maxDay time.Time
	cm := s.currentMonth()
	dq.scan(0, func(_ int64, r *row) bool {
		t.Rows++
		cur := r.sub.currency
		if sums[cur] == nil {
			sums[cur] = &decSum{}
		}
		sums[cur].add(r.billingCost())
		kind := ""
		if !v.flat {
			kind = "legacy"
			if r.sub.modern {
				kind = "modern"
				if usd == nil {
					usd = &decSum{}
				}
				usd.add(r.costUSD)
			}
		}
		t.Kinds[kind]++
		buf = appendRecord(buf[:0], v, &recCtx{r: r, expandMeter: expandMeter, open: r.month == cm})
		h := sha256.Sum256(buf)
		digests = append(digests, hex.EncodeToString(h[:]))
		if minDay.IsZero() || r.day.Before(minDay) {
			minDay = r.day
		}
		if r.day.After(maxDay) {
			maxDay = r.day
		}
		return true
	})
	for c, sum := range sums {
		t.Sums[c] = sum.String()
	}
	if usd != nil {
		t.USDSum = usd.String()
	}
	t.Hash = HashDigests(digests)
	if t.Rows > 0 {
		t.MinDate, t.MaxDate = minDay.Format(time.DateOnly), maxDay.Format(time.DateOnly)
	}
	return t
}

// HashDigests combines per-record lower-case hex SHA-256 digests into a Truth.Hash (it sorts
// digests in place).
func HashDigests(digests []string) string {
	slices.Sort(digests)
	h := sha256.New()
	for _, d := range digests {
		h.Write([]byte(d))
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// RecordDigest returns the lower-case hex SHA-256 of one record's bytes, for HashDigests.
func RecordDigest(record []byte) string {
	h := sha256.Sum256(record)
	return hex.EncodeToString(h[:])
}

// serveGroundTruth answers GET /sandbox/groundtruth?scope=&period=&metric=&api-version=.
func (s *Server) serveGroundTruth(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "use GET")
		return
	}
	q := r.URL.Query()
	sc, err := scope.Parse(q.Get("scope"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "BadRequest", err.Error())
		return
	}
	p, err := period.Parse(q.Get("period"))
	if err == nil && p.Suffix != "" {
		p, err = s.BillingPeriod(sc, p.String())
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "BadRequest", err.Error())
		return
	}
	ver := q.Get("api-version")
	if ver == "" {
		ver = LatestAPIVersion
	}
	t, err := s.GroundTruthExpand(sc, p, q.Get("metric"), ver, q.Get("expand"))
	switch {
	case errors.Is(err, ErrUnknownScope):
		writeError(w, http.StatusNotFound, "NotFound", err.Error())
	case err != nil:
		writeError(w, http.StatusBadRequest, "BadRequest", err.Error())
	default:
		writeJSON(w, http.StatusOK, t)
	}
}

// metricOf maps a Cost Details metric (ActualCost, AmortizedCost) to the usageDetails one.
func metricOf(cd string) (Metric, bool) {
	switch strings.ToLower(cd) {
	case "", "actualcost":
		return MetricActualCost, true
	case "amortizedcost":
		return MetricAmortizedCost, true
	}
	return "", false
}

// BillingPeriod returns subscription sc's billing period called name, with its own days (a
// pay-as-you-go period) or as the calendar month, as the Billing Periods API lists it.
func (s *Server) BillingPeriod(sc scope.Scope, name string) (period.Period, error) {
	subs, err := s.w.resolve(sc)
	if err != nil || sc.Kind != scope.Subscription {
		return period.Period{}, fmt.Errorf("billing period %s of %s: %w", name, sc, ErrUnknownScope)
	}
	first, last, ok := subs[0].periodNamed(name)
	if !ok {
		return period.Period{}, fmt.Errorf("billing period %s of %s: %w", name, sc, period.ErrInvalid)
	}
	return period.Anchored(name, first, last)
}
