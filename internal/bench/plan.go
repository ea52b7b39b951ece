package bench

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/sandbox"
	"github.com/usage-export/usage-export/internal/scope"
)

// The plan table ("-only plan"): what the listing plan spends against the limits the real
// service sets. The sandbox enforces the observed per-scope-kind rates of the reference
// (azure-in-production.md §3) with time scaled by PlanTimeScale, the exporter gets the same
// budget, and each scenario runs with date ranges honoured and ignored (sandbox
// IgnoreDateFilter). Calls are compared with the floor ⌈rows/1000⌉ per partition, and wall time
// with the floor's time at the scope's rate.

// ObservedRate is the observed usageDetails call rate per minute of a scope kind
// (sandbox.ObservedRates: the reference's per-scope-kind figures).
func ObservedRate(k scope.Kind) int { return sandbox.ObservedRates[k] }

// PlanTimeScale shrinks time in the plan table: one real minute of rate budget lasts 100 ms.
const PlanTimeScale = 600

// planWindow is the sandbox's sliding rate window in the plan table (a window scaled down less
// than the rate, as in DefaultRateScenario, so that the exporter's spacing margin stays above a
// loaded machine's scheduling jitter).
const planWindow = 10 * time.Second

// PlanScenario is one row pair of the plan table.
type PlanScenario struct {
	Name   string
	Scope  scope.Scope
	Months int // the last Months complete billing periods
	Rows   int // records per month wanted (the sandbox is sized to it)
}

// PlanScenarios: a small, a medium and a 1 M-row partition, a 12-month backfill of a
// department (EA scopes, listed through the billing-period sub-scope), and a small MCA billing
// profile month (listed by date range).
var PlanScenarios = []PlanScenario{
	{"small: department month", scope.MustParse("/providers/Microsoft.Billing/departments/301001"), 1, 2500},
	{"medium: department month", scope.MustParse("/providers/Microsoft.Billing/departments/301001"), 1, 100_000},
	{"1M: billing account month", EAScope, 1, 1_000_000},
	{"backfill: department, 12 months", scope.MustParse("/providers/Microsoft.Billing/departments/301001"), 12, 2500},
	// A date-range scope, where ignored date ranges could cost calls: an MCA billing profile.
	{"small: MCA billing profile month", scope.MustParse("/providers/Microsoft.Billing/billingAccounts/" +
		sandbox.MCABillingAccount + "/billingProfiles/AB12-CD34-BG7-TGB"), 1, 2500},
}

// PlanRow is one measured scenario of the plan table.
type PlanRow struct {
	Scenario    string
	DatesIgnore bool
	Kind        scope.Kind
	RatePerMin  int // the scope kind's real rate
	Partitions  int
	Records     int64
	Calls       int64 // usageDetails calls the sandbox answered (throttled ones included)
	Throttled   int64
	FloorCalls  int64         // Σ ⌈rows/1000⌉ over the partitions
	FloorWall   time.Duration // FloorCalls at the scaled rate
	Usage
}

func (r *runner) planTable(ctx context.Context, last period.Period) error {
	scenarios := r.o.Plan
	if scenarios == nil {
		scenarios = PlanScenarios
	}
	for _, ps := range scenarios {
		var periods []period.Period
		for i := ps.Months - 1; i >= 0; i-- {
			periods = append(periods, last.Add(-i))
		}
		perDay, _, err := recordsPerDay(ps.Scope, last, ps.Rows)
		if err != nil {
			return err
		}
		for _, ignore := range []bool{false, true} {
			row, err := r.planRun(ctx, ps, periods, perDay, ignore)
			if err != nil {
				return err
			}
			r.rep.Plan = append(r.rep.Plan, row)
		}
	}
	return nil
}

func (r *runner) planRun(ctx context.Context, ps PlanScenario, periods []period.Period, perDay int, ignore bool) (*PlanRow, error) {
	rate := ObservedRate(ps.Scope.Kind)
	perKind := map[scope.Kind]int{}
	for k, n := range sandbox.ObservedRates {
		perKind[k] = int(float64(n) * PlanTimeScale * planWindow.Seconds() / 60)
	}
	sb, err := sandbox.New(&sandbox.Options{
		RecordsPerDay: perDay, IgnoreDateFilter: ignore, RateWindow: planWindow, RatePerKind: perKind,
	})
	if err != nil {
		return nil, fmt.Errorf("bench: plan sandbox: %w", err)
	}
	if err := sb.Start(); err != nil {
		return nil, fmt.Errorf("bench: plan sandbox: %w", err)
	}
	defer sb.Close()
	row := &PlanRow{Scenario: ps.Name, DatesIgnore: ignore, Kind: ps.Scope.Kind, RatePerMin: rate, Partitions: len(periods)}
	for _, p := range periods {
		t, err := sb.GroundTruth(ps.Scope, p, "actualcost")
		if err != nil {
			return nil, fmt.Errorf("bench: %s: %w", ps.Name, err)
		}
		row.FloorCalls += int64((t.Rows + 999) / 1000)
	}
	perSecond := float64(rate) * PlanTimeScale / 60
	row.FloorWall = time.Duration(float64(row.FloorCalls) / perSecond * float64(time.Second))
	name := fmt.Sprintf("plan: %s (dates %s)", ps.Name, map[bool]string{false: "honoured", true: "ignored"}[ignore])
	dir := filepath.Join(r.o.WorkDir, "plan-"+strings.NewReplacer(" ", "-", ":", "", ",", "").Replace(ps.Name)+fmt.Sprint(ignore))
	ex := exportRun{scopes: []scope.Scope{ps.Scope}, periods: periods, out: outputDir(dir),
		ratePerScope: rate * PlanTimeScale, rateTenant: unlimitedRate}
	x, sum, err := r.export(ctx, name, sb, ex)
	if err != nil {
		return nil, err
	}
	st := sb.Stats()
	for _, n := range st.ByScope {
		row.Calls += n
	}
	row.Throttled, row.Records, row.Usage = st.Throttled, sum.Rows, x.Usage
	r.o.Logf("%s: %d calls (floor %d), wall %.2f s (floor %.2f s), %.2f µs/record, peak RSS %.1f MiB", name,
		row.Calls, row.FloorCalls, row.Wall.Seconds(), row.FloorWall.Seconds(), x.CPUPerRecord()*1e6, x.MaxRSSMiB())
	return row, nil
}

// writePlan writes the plan table, calls vs floor first.
func (rep *Report) writePlan(w io.Writer, markdown bool) error {
	if len(rep.Plan) == 0 {
		return nil
	}
	head := []string{"scenario", "date ranges", "calls / floor", "calls", "floor ⌈rows/1000⌉", "throttled", "wall / floor",
		"wall s", "floor s", "partitions", "records", "CPU µs/record", "peak RSS MiB"}
	var lines [][]string
	for _, p := range rep.Plan {
		cpu := 0.0
		if p.Records > 0 {
			cpu = p.CPU.Seconds() / float64(p.Records) * 1e6
		}
		lines = append(lines, []string{
			fmt.Sprintf("%s (%s, %d/min)", p.Scenario, p.Kind, p.RatePerMin), map[bool]string{false: "honoured", true: "ignored"}[p.DatesIgnore],
			fmt.Sprintf("%.2f", float64(p.Calls)/float64(max(1, p.FloorCalls))), fmt.Sprint(p.Calls), fmt.Sprint(p.FloorCalls), fmt.Sprint(p.Throttled),
			fmt.Sprintf("%.2f", p.Wall.Seconds()/max(1e-9, p.FloorWall.Seconds())), fmt.Sprintf("%.2f", p.Wall.Seconds()),
			fmt.Sprintf("%.2f", p.FloorWall.Seconds()),
			fmt.Sprint(p.Partitions), count(p.Records), fmt.Sprintf("%.2f", cpu), fmt.Sprintf("%.1f", p.MaxRSSMiB()),
		})
	}
	note := fmt.Sprintf("Plan: observed per-scope-kind rates, time scaled 1:%d (one real minute = %v); floor = Σ ⌈rows/1000⌉ calls, "+
		"its wall time at the scope's rate; one run each.", PlanTimeScale, time.Minute/PlanTimeScale)
	if markdown {
		var b strings.Builder
		b.WriteString("| " + strings.Join(head, " | ") + " |\n|---|---|" + strings.Repeat("---:|", len(head)-2) + "\n")
		for _, l := range lines {
			b.WriteString("| " + strings.Join(l, " | ") + " |\n")
		}
		b.WriteString("\n" + note + "\n\n")
		_, err := io.WriteString(w, b.String())
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	for _, l := range lines {
		fmt.Fprintln(tw, strings.Join(l, "\t")+"\t")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%s\n\n", note)
	return err
}
