// Package period models billing periods (calendar months named YYYYMM, UTC), their status
// (open, closing, final) and the plan of periods a scheduled export covers.
package period

import (
	"errors"
	"fmt"
	"time"
)

// Period is a calendar month in UTC. The zero value is not valid.
type Period struct {
	Year  int
	Month time.Month
}

// ErrInvalid is wrapped by every parse error.
var ErrInvalid = errors.New("invalid billing period")

// Earliest is the first month the usage-details API has data for (May 2014).
var Earliest = Period{2014, time.May}

// Parse parses "YYYYMM" (also accepting "YYYY-MM").
func Parse(s string) (Period, error) {
	if len(s) == 7 && s[4] == '-' {
		s = s[:4] + s[5:]
	}
	if len(s) != 6 {
		return Period{}, fmt.Errorf("%w %q: want YYYYMM", ErrInvalid, s)
	}
	t, err := time.Parse("200601", s)
	if err != nil {
		return Period{}, fmt.Errorf("%w %q: want YYYYMM", ErrInvalid, s)
	}
	p := Of(t)
	if p.Before(Earliest) {
		return Period{}, fmt.Errorf("%w %q: usage data starts in %s", ErrInvalid, s, Earliest)
	}
	return p, nil
}

// Of returns the period containing t (in UTC).
func Of(t time.Time) Period {
	t = t.UTC()
	return Period{t.Year(), t.Month()}
}

// String returns "YYYYMM".
func (p Period) String() string { return fmt.Sprintf("%04d%02d", p.Year, int(p.Month)) }

// Start is the first instant of the period.
func (p Period) Start() time.Time { return time.Date(p.Year, p.Month, 1, 0, 0, 0, 0, time.UTC) }

// End is the first instant after the period.
func (p Period) End() time.Time { return p.Start().AddDate(0, 1, 0) }

// Days is the number of days in the period.
func (p Period) Days() int { return int(p.End().Sub(p.Start()).Hours() / 24) }

// Add returns the period n months later (n may be negative).
func (p Period) Add(n int) Period { return Of(p.Start().AddDate(0, n, 0)) }

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
