package partplan

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/scope"
)

const (
	subA   = "/subscriptions/11111111-1111-1111-1111-111111111111"
	subB   = "/subscriptions/22222222-2222-2222-2222-222222222222"
	eaAcct = "/providers/Microsoft.Billing/billingAccounts/1234567"
	ea2402 = eaAcct + "/providers/Microsoft.Billing/billingPeriods/202402"
)

// now is 10 March 2024: 202402 ended nine days ago, outside a 5-day restatement window.
var now = time.Date(2024, time.March, 10, 12, 0, 0, 0, time.UTC)

func scopes(t *testing.T, ids ...string) []scope.Scope {
	t.Helper()
	var out []scope.Scope
	for _, id := range ids {
		sc, err := scope.Parse(id)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, sc)
	}
	return out
}

// lines renders partitions as "scope period metric", one a line.
func lines(parts []export.Partition) string {
	var b strings.Builder
	for _, p := range parts {
		fmt.Fprintf(&b, "%s %s %s\n", p.Scope, p.Period, p.Metric)
	}
	return b.String()
}

// TestMake: every way of asking for periods, and every reason a request is refused, with the
// reason checked by errors.Is and the field by errors.As.
func TestMake(t *testing.T) {
	for _, tt := range []struct {
		name     string
		scopes   []string
		req      Request
		metrics  []string
		opts     Options
		want     string // partitions, one a line; or
		periods  string // the plan's period names
		reason   error  // the refusal's reason
		field    string
		contains string // in the refusal's message
	}{
		{name: "list, in order, repeats once", scopes: []string{subA}, req: Request{Periods: []string{"202402", "2024-01", "202402"}},
			metrics: []string{"actualcost"}, periods: "202402,202401",
			want: subA + " 202402 actualcost\n" + subA + " 202401 actualcost\n"},
		{name: "list × metrics × scopes, scope by scope", scopes: []string{subA, subB}, req: Request{Periods: []string{"202401"}},
			metrics: []string{"actualcost", "amortizedcost"}, periods: "202401",
			want: subA + " 202401 actualcost\n" + subA + " 202401 amortizedcost\n" + subB + " 202401 actualcost\n" + subB + " 202401 amortizedcost\n"},
		{name: "pay-as-you-go name", scopes: []string{subA}, req: Request{Periods: []string{"202402-1"}}, metrics: []string{"actualcost"},
			periods: "202402-1", want: subA + " 202402-1 actualcost\n"},
		{name: "the current period", scopes: []string{subA}, req: Request{Periods: []string{"202403"}}, metrics: []string{"usage"},
			periods: "202403", want: subA + " 202403 usage\n"},
		{name: "range", scopes: []string{subA}, req: Request{From: "202312", To: "202402"}, metrics: []string{"actualcost"},
			periods: "202312,202401,202402"},
		{name: "range to now", scopes: []string{subA}, req: Request{From: "202402"}, metrics: []string{"actualcost"},
			periods: "202402,202403"},
		{name: "range of one", scopes: []string{subA}, req: Request{From: "202402", To: "202402"}, metrics: []string{"actualcost"},
			periods: "202402"},
		{name: "range at the limit", scopes: []string{subA}, req: Request{From: "202304", To: "202403"}, opts: Options{MaxMonths: 12},
			metrics: []string{"actualcost"}, periods: "202304,202305,202306,202307,202308,202309,202310,202311,202312,202401,202402,202403"},
		{name: "no limit", scopes: []string{subA}, req: Request{From: "201405", To: "201406"}, metrics: []string{"actualcost"},
			periods: "201405,201406"},
		{name: "scheduled, outside the restatement window", scopes: []string{subA}, opts: Options{RestatementDays: 5},
			metrics: []string{"actualcost"}, periods: "202403", want: subA + " 202403 actualcost\n"},
		{name: "scheduled, inside the restatement window", scopes: []string{subA}, opts: Options{RestatementDays: 10},
			metrics: []string{"actualcost"}, periods: "202402,202403"},
		{name: "sub-scope joins its own period", scopes: []string{ea2402, subA}, req: Request{From: "202401", To: "202402"},
			metrics: []string{"actualcost", "usage"}, periods: "202401,202402",
			want: ea2402 + " 202402 actualcost\n" + ea2402 + " 202402 usage\n" +
				subA + " 202401 actualcost\n" + subA + " 202401 usage\n" + subA + " 202402 actualcost\n" + subA + " 202402 usage\n"},
		{name: "sub-scope left out", scopes: []string{ea2402, subA}, req: Request{Periods: []string{"202401"}},
			metrics: []string{"actualcost"}, periods: "202401", want: subA + " 202401 actualcost\n"},
		{name: "no metrics, no partitions", scopes: []string{subA}, req: Request{Periods: []string{"202401"}}, periods: "202401", want: ""},

		{name: "list and range", req: Request{Periods: []string{"202401"}, From: "202301"}, reason: ErrPeriodsAndRange, contains: "not both"},
		{name: "list and to", req: Request{Periods: []string{"202401"}, To: "202301"}, reason: ErrPeriodsAndRange, contains: "not both"},
		{name: "to without from", req: Request{To: "202401"}, reason: ErrToWithoutFrom, contains: `"to" needs "from"`},
		{name: "nothing, explicit", opts: Options{Explicit: true}, reason: ErrNoPeriods, contains: `"periods"`},
		{name: "bad name in list", req: Request{Periods: []string{"202401", "2024-13"}}, reason: period.ErrInvalid, field: FieldPeriods, contains: "YYYYMM"},
		{name: "before the data", req: Request{Periods: []string{"201001"}}, reason: period.ErrInvalid, field: FieldPeriods, contains: "starts in"},
		{name: "future in list", req: Request{Periods: []string{"202404"}}, reason: ErrFuturePeriod, field: FieldPeriods,
			contains: "billing period 202404 is in the future (the current one is 202403)"},
		{name: "future pay-as-you-go", req: Request{Periods: []string{"202404-1"}}, reason: ErrFuturePeriod, field: FieldPeriods, contains: "202404-1"},
		{name: "list too long", req: Request{Periods: []string{"202401", "202402", "202403"}}, opts: Options{MaxMonths: 2},
			reason: ErrTooManyMonths, field: FieldPeriods, contains: "3 billing periods asked for; at most 2 per job"},
		{name: "repeats count once", req: Request{Periods: []string{"202401", "202401", "202401"}}, opts: Options{MaxMonths: 1},
			periods: "202401", want: ""},
		{name: "bad from", req: Request{From: "2024"}, reason: period.ErrInvalid, field: FieldFrom, contains: "from: "},
		{name: "bad to", req: Request{From: "202401", To: "20241"}, reason: period.ErrInvalid, field: FieldTo, contains: "to: "},
		{name: "future to", req: Request{From: "202401", To: "202406"}, reason: ErrFuturePeriod, field: FieldTo,
			contains: "to: billing period 202406 is in the future (the current one is 202403)"},
		{name: "future from", req: Request{From: "202404"}, reason: ErrFuturePeriod, field: FieldFrom, contains: "from: billing period 202404"},
		{name: "future from and to: to first", req: Request{From: "202405", To: "202406"}, reason: ErrFuturePeriod, field: FieldTo},
		{name: "backwards", req: Request{From: "202402", To: "202401"}, reason: ErrEndBeforeStart, contains: "from 202402 is after to 202401"},
		{name: "range too long", req: Request{From: "202001", To: "202312"}, opts: Options{MaxMonths: 36},
			reason: ErrTooManyMonths, contains: "202001..202312 is 48 months; at most 36 per job"},
		{name: "sub-scope not covered", scopes: []string{ea2402, subA}, req: Request{Periods: []string{"202401"}},
			opts: Options{EveryScope: true}, metrics: []string{"actualcost"}, reason: ErrScopeNotCovered,
			contains: "scope " + ea2402 + " is configured for billing period 202402 only"},
		{name: "sub-scope covered", scopes: []string{ea2402}, req: Request{Periods: []string{"202402"}},
			opts: Options{EveryScope: true}, metrics: []string{"actualcost"}, periods: "202402", want: ea2402 + " 202402 actualcost\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.opts
			o.Now = now
			pl, err := Make(context.Background(), scopes(t, tt.scopes...), tt.req, tt.metrics, &o)
			if tt.reason != nil {
				var re *RequestError
				if !errors.Is(err, tt.reason) || !errors.As(err, &re) {
					t.Fatalf("err = %v (%T), want a *RequestError for %v", err, err, tt.reason)
				}
				if re.Field != tt.field {
					t.Errorf("Field = %q, want %q", re.Field, tt.field)
				}
				if !strings.Contains(err.Error(), tt.contains) {
					t.Errorf("message %q does not say %q", err, tt.contains)
				}
				if pl != nil {
					t.Errorf("a plan with the error: %+v", pl)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(pl.PeriodNames(), ","); got != tt.periods {
				t.Errorf("periods %s, want %s", got, tt.periods)
			}
			if tt.want != "" || tt.metrics == nil {
				if got := lines(pl.Partitions); got != tt.want {
					t.Errorf("partitions:\n%s\nwant\n%s", got, tt.want)
				}
			}
			if len(pl.Partitions) != countWant(pl, scopes(t, tt.scopes...), tt.metrics) {
				t.Errorf("%d partitions for %d periods × %d metrics", len(pl.Partitions), len(pl.Periods), len(tt.metrics))
			}
			if len(pl.Notes) != 0 {
				t.Errorf("notes without a lister: %+v", pl.Notes)
			}
		})
	}
}

// countWant is the number of partitions scopes × periods × metrics with the sub-scope rule.
func countWant(pl *Plan, scs []scope.Scope, metrics []string) int {
	n := 0
	for _, sc := range scs {
		for _, p := range pl.Periods {
			if sc.BillingPeriod == "" || sc.BillingPeriod == p.String() {
				n += len(metrics)
			}
		}
	}
	return n
}

// TestMakeNilOptions: nil options plan the scheduled periods at time.Now with no limit.
func TestMakeNilOptions(t *testing.T) {
	pl, err := Make(context.Background(), scopes(t, subA), Request{}, []string{"actualcost"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := pl.PeriodNames(), period.Of(time.Now()).String(); len(got) != 1 || got[0] != want {
		t.Errorf("periods %v, want [%s]", got, want)
	}
}

// lister serves billing periods per subscription, or an error, and counts its calls.
type lister struct {
	periods map[string][]period.Period
	err     error
	calls   int
}

func (l *lister) BillingPeriods(_ context.Context, sub scope.Scope) ([]period.Period, error) {
	l.calls++
	if l.err != nil {
		return nil, l.err
	}
	return l.periods[sub.String()], nil
}

func anchored(t *testing.T, name, first, last string) period.Period {
	t.Helper()
	f, _ := time.Parse(time.DateOnly, first)
	l, _ := time.Parse(time.DateOnly, last)
	p, err := period.Anchored(name, f, l)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestScheduledPayAsYouGo: the scheduled plan reads each subscription's own billing periods
// once; a pay-as-you-go subscription gets its own periods (with a note), one whose periods are
// the calendar months gets them without a note, and one whose periods cannot be read or include
// none open now gets the calendar months with a note saying why. Other scopes are not read.
func TestScheduledPayAsYouGo(t *testing.T) {
	now := time.Date(2026, time.December, 26, 9, 0, 0, 0, time.UTC)
	payg := []period.Period{
		anchored(t, "202612-1", "2026-11-24", "2026-12-23"),
		anchored(t, "202701-1", "2026-12-24", "2027-01-23"),
	}
	calendar := []period.Period{anchored(t, "202612", "2026-12-01", "2026-12-31")}
	stale := []period.Period{anchored(t, "202001-1", "2019-12-24", "2020-01-23")}
	const subC = "/subscriptions/33333333-3333-3333-3333-333333333333"
	for _, tt := range []struct {
		name    string
		lister  *lister
		scope   string
		periods string
		note    string // "own", "err", "none" or ""
		calls   int
	}{
		{"pay-as-you-go", &lister{periods: map[string][]period.Period{subA: payg}}, subA, "202612-1,202701-1", "own", 1},
		{"calendar periods", &lister{periods: map[string][]period.Period{subA: calendar}}, subA, "202612", "", 1},
		{"unreadable", &lister{err: errors.New("403 Forbidden")}, subA, "202612", "err", 1},
		{"none open now", &lister{periods: map[string][]period.Period{subA: stale}}, subA, "202612", "none", 1},
		{"not a subscription", &lister{err: errors.New("must not be called")}, eaAcct, "202612", "", 0},
		{"sub-scope", &lister{err: errors.New("must not be called")}, subC + "/providers/Microsoft.Billing/billingPeriods/202612", "202612", "", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pl, err := Make(context.Background(), scopes(t, tt.scope), Request{}, []string{"actualcost"},
				&Options{Now: now, RestatementDays: 5, Lister: tt.lister})
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(pl.PeriodNames(), ","); got != tt.periods {
				t.Errorf("periods %s, want %s", got, tt.periods)
			}
			if len(pl.Partitions) != len(pl.Periods) {
				t.Errorf("%d partitions for %d periods", len(pl.Partitions), len(pl.Periods))
			}
			if tt.lister.calls != tt.calls {
				t.Errorf("%d Billing Periods calls, want %d", tt.lister.calls, tt.calls)
			}
			var got string
			if len(pl.Notes) == 1 {
				switch n := pl.Notes[0]; {
				case n.Err != nil:
					got = "err"
				case len(n.Own) > 0:
					got = "own"
				default:
					got = "none"
				}
			}
			if got != tt.note || len(pl.Notes) > 1 {
				t.Errorf("notes %+v, want %q", pl.Notes, tt.note)
			}
		})
	}
}

// TestScheduledMixedScopes: scope by scope, each with its own scheduled periods; the plan's
// periods are each named once, by name.
func TestScheduledMixedScopes(t *testing.T) {
	now := time.Date(2026, time.December, 26, 9, 0, 0, 0, time.UTC)
	l := &lister{periods: map[string][]period.Period{subA: {
		anchored(t, "202612-1", "2026-11-24", "2026-12-23"), anchored(t, "202701-1", "2026-12-24", "2027-01-23"),
	}}}
	pl, err := Make(context.Background(), scopes(t, subA, subB, eaAcct), Request{}, []string{"actualcost", "usage"},
		&Options{Now: now, RestatementDays: 5, Lister: l})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(pl.PeriodNames(), ","); got != "202612,202612-1,202701-1" {
		t.Errorf("periods %s", got)
	}
	want := subA + " 202612-1 actualcost\n" + subA + " 202612-1 usage\n" + subA + " 202701-1 actualcost\n" + subA + " 202701-1 usage\n" +
		subB + " 202612 actualcost\n" + subB + " 202612 usage\n" + eaAcct + " 202612 actualcost\n" + eaAcct + " 202612 usage\n"
	if got := lines(pl.Partitions); got != want {
		t.Errorf("partitions:\n%s\nwant\n%s", got, want)
	}
	if len(pl.Notes) != 2 || len(pl.Notes[0].Own) != 2 || pl.Notes[1].Listed != 0 || pl.Notes[1].Own != nil {
		t.Errorf("notes %+v, want subA's own periods and subB's none open", pl.Notes)
	}
}
