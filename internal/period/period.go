// Package period models billing periods — calendar months named YYYYMM (EA, MCA) and the
// sign-up-anchored periods of pay-as-you-go subscriptions (named like 201702-1) — their status
// (open, closing, final) and the plan of periods a scheduled export covers.
package period

import (
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Period is a billing period: a calendar month in UTC, or (pay-as-you-go) the subscription's own
// period as the Billing Periods API defines it. The zero value is not valid.
type Period struct {
	Year  int
	Month time.Month
	// Suffix is the "-N" of a pay-as-you-go period's name without the '-' ("1" in 201702-1);
	// "" for a calendar month.
	Suffix string
	// From and To are the period's first day and the day after its last, set for a period that
	// is not the calendar month Year-Month (Anchored); zero for a calendar month.
	From, To time.Time
}

// ErrInvalid is wrapped by every parse error.
var ErrInvalid = errors.New("invalid billing period")

// Earliest is the first month the usage-details API has data for (May 2014).
var Earliest = Period{Year: 2014, Month: time.May}

// nameRE is a billing-period name: YYYYMM, optionally with a "-N" suffix.
var nameRE = regexp.MustCompile(`^([0-9]{6})(?:-([0-9]{1,3}))?$`)

// Parse parses "YYYYMM" (also accepting "YYYY-MM") or a pay-as-you-go name "YYYYMM-N". A
// suffixed period's days are unknown until Anchored gives them (Start and End are the calendar
// month's until then).
func Parse(s string) (Period, error) {
	if len(s) == 7 && s[4] == '-' {
		s = s[:4] + s[5:]
	}
	m := nameRE.FindStringSubmatch(s)
	if m == nil {
		return Period{}, fmt.Errorf("%w %q: want YYYYMM (or a pay-as-you-go name like 201702-1)", ErrInvalid, s)
	}
	t, err := time.Parse("200601", m[1])
	if err != nil {
		return Period{}, fmt.Errorf("%w %q: want YYYYMM", ErrInvalid, s)
	}
	p := Of(t)
	if p.Before(Earliest) {
		return Period{}, fmt.Errorf("%w %q: usage data starts in %s", ErrInvalid, s, Earliest)
	}
	p.Suffix = m[2]
	return p, nil
}

// Anchored returns the period named name (YYYYMM or YYYYMM-N) covering the days first..last
// (inclusive), as the Billing Periods API lists them.
func Anchored(name string, first, last time.Time) (Period, error) {
	p, err := Parse(name)
	if err != nil {
		return Period{}, err
	}
	first, last = first.UTC().Truncate(24*time.Hour), last.UTC().Truncate(24*time.Hour)
	if last.Before(first) {
		return Period{}, fmt.Errorf("%w %q: ends (%s) before it starts (%s)", ErrInvalid, name,
			last.Format(time.DateOnly), first.Format(time.DateOnly))
	}
	if p.Suffix == "" && first.Equal(p.Start()) && last.Equal(p.End().AddDate(0, 0, -1)) {
		return p, nil // the calendar month
	}
	p.From, p.To = first, last.AddDate(0, 0, 1)
	return p, nil
}

// Of returns the calendar month containing t (in UTC).
func Of(t time.Time) Period {
	t = t.UTC()
	return Period{Year: t.Year(), Month: t.Month()}
}

// String returns the period's name: "YYYYMM", or "YYYYMM-N" for a suffixed one.
func (p Period) String() string {
	s := fmt.Sprintf("%04d%02d", p.Year, int(p.Month))
	if p.Suffix != "" {
		s += "-" + p.Suffix
	}
	return s
}

// Calendar reports whether p is the calendar month its name says (no suffix, no own days).
func (p Period) Calendar() bool { return p.Suffix == "" && p.From.IsZero() }

// Start is the first instant of the period.
func (p Period) Start() time.Time {
	if !p.From.IsZero() {
		return p.From
	}
	return time.Date(p.Year, p.Month, 1, 0, 0, 0, 0, time.UTC)
}

// End is the first instant after the period.
func (p Period) End() time.Time {
	if !p.To.IsZero() {
		return p.To
	}
	return time.Date(p.Year, p.Month, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 1, 0)
}

// Days is the number of days in the period.
func (p Period) Days() int { return int(p.End().Sub(p.Start()).Hours() / 24) }

// Add returns the calendar month n months after p's name month (n may be negative).
func (p Period) Add(n int) Period {
	return Of(time.Date(p.Year, p.Month, 1, 0, 0, 0, 0, time.UTC).AddDate(0, n, 0))
}

// Before reports whether p is earlier than q.
func (p Period) Before(q Period) bool {
	return p.Year < q.Year || (p.Year == q.Year && p.Month < q.Month)
}

// IsZero reports whether p is the zero Period.
func (p Period) IsZero() bool { return p.Year == 0 }

// Range returns the periods from first to last inclusive. It fails when last is before first or
// the range is longer than max months (max ≤ 0: no limit).
func Range(first, last Period, max int) ([]Period, error) {
	if last.Before(first) {
		return nil, fmt.Errorf("%w range %s..%s: end before start", ErrInvalid, first, last)
	}
	n := (last.Year-first.Year)*12 + int(last.Month-first.Month) + 1
	if max > 0 && n > max {
		return nil, fmt.Errorf("%w range %s..%s: %d months, at most %d allowed", ErrInvalid, first, last, n, max)
	}
	out := make([]Period, 0, n)
	for p := first; !last.Before(p); p = p.Add(1) {
		out = append(out, p)
	}
	return out, nil
}

// Status is the state of a period at export time.
type Status string

// Statuses. Azure closes a period up to 72 h after it ends and charges change until about the
// 5th, so a period is "closing" for the restatement window after its end, then "final".
const (
	Open    Status = "open"    // month to date
	Closing Status = "closing" // ended, inside the restatement window
	Final   Status = "final"   // ended, restatement window over
	Future  Status = "future"  // not started yet
)

// StatusAt returns the status of p at now, given a restatement window of restatementDays days
// after the period's end.
func (p Period) StatusAt(now time.Time, restatementDays int) Status {
	now = now.UTC()
	switch {
	case now.Before(p.Start()):
		return Future
	case now.Before(p.End()):
		return Open
	case now.Before(p.End().AddDate(0, 0, restatementDays)):
		return Closing
	default:
		return Final
	}
}

// Scheduled returns the periods a scheduled run at now exports: the current period and, while
// the previous one is still inside its restatement window, the previous one first.
func Scheduled(now time.Time, restatementDays int) []Period {
	cur := Of(now)
	prev := cur.Add(-1)
	if prev.StatusAt(now, restatementDays) == Closing {
		return []Period{prev, cur}
	}
	return []Period{cur}
}

// ScheduledAmong is Scheduled over a subscription's own billing periods (a pay-as-you-go
// subscription's, from the Billing Periods API): the period containing now and, while it is
// inside its restatement window, the one before it, earlier first.
func ScheduledAmong(now time.Time, restatementDays int, periods []Period) []Period {
	var cur, prev *Period
	for i := range periods {
		p := &periods[i]
		switch p.StatusAt(now, restatementDays) {
		case Open:
			cur = p
		case Closing:
			if prev == nil || prev.End().Before(p.End()) {
				prev = p
			}
		}
	}
	var out []Period
	if prev != nil {
		out = append(out, *prev)
	}
	if cur != nil {
		out = append(out, *cur)
	}
	return out
}
