package export

import (
	"context"
	"fmt"
	"sync"

	"github.com/rs/zerolog"

	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/scope"
)

// PeriodLister is a Source that knows a subscription's billing periods as Azure defines them
// (the Billing Periods API): UsageDetails.
type PeriodLister interface {
	BillingPeriods(ctx context.Context, sub scope.Scope) ([]period.Period, error)
}

// periodCache lists each subscription's billing periods once per run.
type periodCache struct {
	mu   sync.Mutex
	subs map[string]*periodList
}

type periodList struct {
	once    sync.Once
	periods []period.Period
	err     error
}

// resolve returns the billing period p of subscription scopes as the subscription defines it:
// for a pay-as-you-go subscription its sign-up-anchored period (named like 202402-1, with its own
// days); p unchanged for other scopes, for subscriptions with calendar periods, and when the
// Billing Periods API cannot be read (logged: the calendar month is exported then). A requested
// YYYYMM selects the period of that name or, failing that, the one period whose name has that
// month with a suffix (202402 → 202402-1); a suffixed name selects exactly.
func (c *periodCache) resolve(ctx context.Context, src Source, p Partition) (Partition, error) {
	pl, ok := src.(PeriodLister)
	if !ok || p.Scope.Kind != scope.Subscription || src.Name() != manifest.SourceUsageDetails {
		if p.Period.Suffix != "" {
			return p, fmt.Errorf("billing period %s: a suffixed name is a pay-as-you-go subscription's period, not one of a %s scope", p.Period, p.Scope.Kind)
		}
		return p, nil
	}
	c.mu.Lock()
	l := c.subs[p.Scope.String()]
	if l == nil {
		l = &periodList{}
		c.subs[p.Scope.String()] = l
	}
	c.mu.Unlock()
	l.once.Do(func() { l.periods, l.err = pl.BillingPeriods(ctx, p.Scope) })
	if l.err != nil {
		if p.Period.Suffix != "" {
			return p, fmt.Errorf("billing period %s: reading the subscription's billing periods: %w", p.Period, l.err)
		}
		zerolog.Ctx(ctx).Warn().Err(l.err).Msg("cannot read the subscription's billing periods: exporting the calendar month")
		return p, nil
	}
	var match []period.Period
	for _, bp := range l.periods {
		switch {
		case bp.String() == p.Period.String():
			p.Period = bp
			return p, nil
		case p.Period.Suffix == "" && bp.Year == p.Period.Year && bp.Month == p.Period.Month:
			match = append(match, bp)
		}
	}
	if len(match) == 1 {
		p.Period = match[0]
		return p, nil
	}
	if p.Period.Suffix != "" || len(match) > 1 {
		return p, fmt.Errorf("billing period %s: the subscription has %d billing periods of that name (%v)", p.Period, len(match), match)
	}
	return p, nil // not listed (older than the API's list, or calendar): the calendar month
}
