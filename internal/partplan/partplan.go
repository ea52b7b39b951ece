// Package partplan turns scopes, a billing-period request and metrics into the partitions an
// export covers, refusing a bad request with a typed error.
package partplan

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/scope"
)

// The reasons a request is refused, wrapped by *RequestError (check with errors.Is). A period
// name that does not parse wraps period.ErrInvalid instead.
var (
	ErrPeriodsAndRange = errors.New("both a list of periods and a from/to range")
	ErrToWithoutFrom   = errors.New("to without from")
	ErrNoPeriods       = errors.New("no billing periods")
	ErrFuturePeriod    = errors.New("billing period in the future")
	ErrEndBeforeStart  = errors.New("range ends before it starts")
	ErrTooManyMonths   = errors.New("too many billing periods")
	ErrScopeNotCovered = errors.New("scope's own billing period not requested")
)

// Field names of a RequestError: the part of the request at fault.
const (
	FieldPeriods = "periods"
	FieldFrom    = "from"
	FieldTo      = "to"
)

// RequestError is a refused period request: which field and why (Err, one of the Err* reasons
// or a period.Parse error). Its message says what to fix.
type RequestError struct {
	// Field is FieldPeriods, FieldFrom, FieldTo, or "" when the request as a whole is at fault.
	Field string
	Err   error
	msg   string
}

func (e *RequestError) Error() string {
	if e.Field == "" {
		return e.msg
	}
	return e.Field + ": " + e.msg
}

// Unwrap returns the reason.
func (e *RequestError) Unwrap() error { return e.Err }

// Message is the message without the field's name.
func (e *RequestError) Message() string { return e.msg }

func refuse(field string, reason error, format string, args ...any) *RequestError {
	return &RequestError{Field: field, Err: reason, msg: fmt.Sprintf(format, args...)}
}

// Request is the billing periods asked for: a list, or a range from From to To (To defaults to
// the current month), or neither: the scheduled periods.
type Request struct {
	Periods  []string // YYYYMM (or YYYY-MM) or pay-as-you-go names like 201702-1; repeats count once
	From, To string   // YYYYMM
}

// Options tunes Make; nil means the defaults of each field.
type Options struct {
	// Now dates the current month and the period statuses; zero: time.Now().
	Now time.Time
	// MaxMonths is the most periods a list or range may name; ≤ 0: no limit.
	MaxMonths int
	// RestatementDays is the window after a period's end in which the scheduled plan still
	// exports it (period.Scheduled).
	RestatementDays int
	// Explicit refuses a request that names no periods (ErrNoPeriods) instead of planning the
	// scheduled ones.
	Explicit bool
	// EveryScope refuses a request whose periods leave out a scope configured for one billing
	// period (ErrScopeNotCovered); otherwise such a scope is left out of the plan.
	EveryScope bool
	// Lister, when set, gives a subscription's own billing periods for the scheduled plan (a
	// pay-as-you-go subscription's are not calendar months); nil: calendar months for every scope.
	Lister export.PeriodLister
}

// Plan is the partitions of a request.
type Plan struct {
	// Periods are the periods planned, each once: a list in its order, a range ascending, the
	// scheduled ones by name.
	Periods []period.Period
	// Partitions are scopes × their periods × metrics, scope by scope.
	Partitions []export.Partition
	// Notes are the scopes whose scheduled periods are not the calendar months, or that fell
	// back to them; the caller logs them.
	Notes []Note
}

// PeriodNames returns the names of p.Periods.
func (p *Plan) PeriodNames() []string {
	out := make([]string, len(p.Periods))
	for i, pr := range p.Periods {
		out[i] = pr.String()
	}
	return out
}

// Note says how the scheduled periods of one subscription were found. Own set: its own
// billing periods were planned. Own empty: the calendar months were planned, because its billing
// periods could not be read (Err) or none of the Listed ones is open now.
type Note struct {
	Scope  scope.Scope
	Own    []period.Period
	Err    error
	Listed int
}

// Make plans req for scopes and metrics. A period request is checked before any call; only the
// scheduled plan with a Lister calls Azure (once per subscription), and a failure there is a
// Note, never an error. The error is a *RequestError.
func Make(ctx context.Context, scopes []scope.Scope, req Request, metrics []string, o *Options) (*Plan, error) {
	if o == nil {
		o = &Options{}
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	if len(req.Periods) == 0 && req.From == "" && req.To == "" {
		if o.Explicit {
			return nil, refuse("", ErrNoPeriods,
				`say which billing periods to export: "periods": ["YYYYMM", …] or "from": "YYYYMM" (and optionally "to")`)
		}
		return scheduled(ctx, scopes, metrics, now, o), nil
	}
	periods, err := requested(req, now, o.MaxMonths)
	if err != nil {
		return nil, err
	}
	pl := &Plan{Periods: periods, Partitions: Partitions(scopes, periods, metrics)}
	if o.EveryScope {
		if err := covered(scopes, pl.Partitions); err != nil {
			return nil, err
		}
	}
	return pl, nil
}

// requested checks a list or range request at now and returns its periods; max ≤ 0: no limit.
func requested(req Request, now time.Time, max int) ([]period.Period, error) {
	switch {
	case len(req.Periods) > 0 && (req.From != "" || req.To != ""):
		return nil, refuse("", ErrPeriodsAndRange, `give "periods" or "from"/"to", not both`)
	case len(req.Periods) > 0:
		return list(req.Periods, period.Of(now), max)
	case req.From == "":
		return nil, refuse("", ErrToWithoutFrom, `"to" needs "from"`)
	}
	return between(req.From, req.To, period.Of(now), max)
}

// list parses a list of period names, each once.
func list(names []string, current period.Period, max int) ([]period.Period, error) {
	var out []period.Period
	for _, raw := range names {
		p, err := period.Parse(raw)
		if err != nil {
			return nil, &RequestError{Field: FieldPeriods, Err: err, msg: err.Error()}
		}
		if current.Before(p) {
			return nil, refuse(FieldPeriods, ErrFuturePeriod, "billing period %s is in the future (the current one is %s)", p, current)
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	if max > 0 && len(out) > max {
		return nil, refuse(FieldPeriods, ErrTooManyMonths, "%d billing periods asked for; at most %d per job", len(out), max)
	}
	return out, nil
}

// between parses a from/to range; to "" is the current month.
func between(from, to string, current period.Period, max int) ([]period.Period, error) {
	first, err := period.Parse(from)
	if err != nil {
		return nil, &RequestError{Field: FieldFrom, Err: err, msg: err.Error()}
	}
	last := current
	if to != "" {
		if last, err = period.Parse(to); err != nil {
			return nil, &RequestError{Field: FieldTo, Err: err, msg: err.Error()}
		}
	}
	switch {
	case current.Before(last):
		return nil, refuse(FieldTo, ErrFuturePeriod, "billing period %s is in the future (the current one is %s)", last, current)
	case current.Before(first):
		return nil, refuse(FieldFrom, ErrFuturePeriod, "billing period %s is in the future (the current one is %s)", first, current)
	case last.Before(first):
		return nil, refuse("", ErrEndBeforeStart, "from %s is after to %s", first, last)
	}
	if n := months(first, last); max > 0 && n > max {
		return nil, refuse("", ErrTooManyMonths, "%s..%s is %d months; at most %d per job", first, last, n, max)
	}
	return period.Range(first, last, 0)
}

func months(first, last period.Period) int {
	return (last.Year-first.Year)*12 + int(last.Month-first.Month) + 1
}

// covered refuses parts that leave out a scope configured for one billing period.
func covered(scopes []scope.Scope, parts []export.Partition) error {
	for _, sc := range scopes {
		if sc.BillingPeriod == "" {
			continue
		}
		if !slices.ContainsFunc(parts, func(p export.Partition) bool { return p.Scope.Equal(sc) }) {
			return refuse("", ErrScopeNotCovered,
				"scope %s is configured for billing period %s only, which the request does not include", sc, sc.BillingPeriod)
		}
	}
	return nil
}

// Partitions crosses scopes, periods and metrics, scope by scope. A scope configured with a
// billing-period sub-scope covers its own period only: it joins where periods include that
// period and is left out otherwise.
func Partitions(scopes []scope.Scope, periods []period.Period, metrics []string) []export.Partition {
	var out []export.Partition
	for _, sc := range scopes {
		for _, p := range periods {
			if sc.BillingPeriod != "" && !strings.HasPrefix(sc.BillingPeriod, p.String()) {
				continue
			}
			for _, m := range metrics {
				out = append(out, export.Partition{Scope: sc, Period: p, Metric: m})
			}
		}
	}
	return out
}

// scheduled plans every scope's scheduled periods at now: the period open now and, inside its
// restatement window, the previous one (period.Scheduled). With a Lister, a subscription
// (without a billing-period sub-scope) is planned among its own billing periods, read once
// (period.ScheduledAmong): a pay-as-you-go subscription's period open now, named like 202702-1,
// and, inside its restatement window, the one before it. A subscription whose billing periods
// cannot be read or include none open now gets the calendar months, with a Note saying why.
func scheduled(ctx context.Context, scopes []scope.Scope, metrics []string, now time.Time, o *Options) *Plan {
	calendar := period.Scheduled(now, o.RestatementDays)
	pl := &Plan{}
	for _, sc := range scopes {
		periods, note := scheduledFor(ctx, sc, now, calendar, o)
		if note != nil {
			pl.Notes = append(pl.Notes, *note)
		}
		for _, p := range periods {
			if !slices.ContainsFunc(pl.Periods, func(q period.Period) bool { return q.String() == p.String() }) {
				pl.Periods = append(pl.Periods, p)
			}
		}
		pl.Partitions = append(pl.Partitions, Partitions([]scope.Scope{sc}, periods, metrics)...)
	}
	slices.SortStableFunc(pl.Periods, func(a, b period.Period) int { return strings.Compare(a.String(), b.String()) })
	return pl
}

// scheduledFor returns the scheduled periods of sc, and a Note when they are not the calendar
// months or fell back to them.
func scheduledFor(ctx context.Context, sc scope.Scope, now time.Time, calendar []period.Period, o *Options) ([]period.Period, *Note) {
	if o.Lister == nil || sc.Kind != scope.Subscription || sc.BillingPeriod != "" {
		return calendar, nil
	}
	listed, err := o.Lister.BillingPeriods(ctx, sc)
	if err != nil {
		return calendar, &Note{Scope: sc, Err: err}
	}
	own := period.ScheduledAmong(now, o.RestatementDays, listed)
	if len(own) == 0 {
		return calendar, &Note{Scope: sc, Listed: len(listed)}
	}
	if slices.EqualFunc(own, calendar, samePeriod) {
		return own, nil
	}
	return own, &Note{Scope: sc, Own: own, Listed: len(listed)}
}

// samePeriod reports whether a and b have the same name and days.
func samePeriod(a, b period.Period) bool {
	return a.String() == b.String() && a.Start().Equal(b.Start()) && a.End().Equal(b.End())
}
