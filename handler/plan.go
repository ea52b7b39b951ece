package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/usage-export/usage-export/internal/config"
	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/plan"
	"github.com/usage-export/usage-export/internal/ratelimit"
	"github.com/usage-export/usage-export/internal/scope"
	"github.com/usage-export/usage-export/internal/store"
)

// sourceChoice is the per-partition source decision of a run as planning shows it: the same
// decideSource the export's Pick hook asks, at now.
func sourceChoice(cfg *config.Config, forced string, now time.Time) plan.SourceFunc {
	return func(p export.Partition, prev *manifest.Manifest) plan.SourceChoice {
		d := decideSource(cfg, forced, p, prev, now)
		return plan.SourceChoice{Source: d.Source, Reason: d.Reason}
	}
}

// planBudget is the configured call budget in calls per minute: the rate budget's own rule per
// scope kind (USAGE_EXPORT_RATE_PER_SCOPE, else the observed per-kind limits).
func planBudget(cfg *config.Config) plan.Budget {
	o := ratelimit.Options{PerScope: cfg.RatePerScope, PerKind: cfg.RatePerKind, PerTenant: cfg.RatePerTenant, Window: cfg.RateWindow}
	perMinute := func(n int) float64 {
		if o.Window <= 0 {
			return float64(n)
		}
		return float64(n) * float64(time.Minute) / float64(o.Window)
	}
	tenant := cfg.RatePerTenant
	if tenant <= 0 {
		tenant = ratelimit.DefaultPerTenant
	}
	return plan.Budget{
		PerScope:  func(sc scope.Scope) float64 { return perMinute(o.Rate(sc.Kind)) },
		PerTenant: perMinute(tenant),
	}
}

// planReader reads what planning needs through the exporter, listing the run folders once.
type planReader struct {
	*export.Exporter
	held map[string]int // relPath → held runs
}

func newPlanReader(ctx context.Context, e *export.Exporter) (*planReader, error) {
	folders, err := e.RunFolders(ctx)
	if err != nil {
		return nil, err
	}
	r := &planReader{Exporter: e, held: map[string]int{}}
	for _, f := range folders {
		if f.Held != nil {
			r.held[f.RelPath]++
		}
	}
	return r, nil
}

func (r *planReader) HeldRuns(_ context.Context, p export.Partition) (int, error) {
	return r.held[p.RelPath()], nil
}

// emptyReader plans against an output that does not exist yet.
type emptyReader struct{}

func (emptyReader) LiveManifest(context.Context, export.Partition) (*manifest.Manifest, error) {
	return nil, nil
}
func (emptyReader) Unfinished(context.Context, export.Partition) (bool, error) { return false, nil }
func (emptyReader) HeldRuns(context.Context, export.Partition) (int, error)    { return 0, nil }

// cmdPlan prints what `handler export` with the same flags would do, calling no billing API.
func cmdPlan(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("plan", flag.ContinueOnError)
	usageFunc(fs, "plan [flags]\n\nShow what `handler export` with the same flags would do: the partitions, the source of each and\nwhy, the expected API calls (from the previous manifests), the time they take under the\nconfigured budget, and what is committed already. Calls no billing API and writes nothing.")
	sf := addSettingFlags(fs, config.UseStore|config.UseRun)
	periods := fs.String("periods", "", "billing periods YYYYMM, comma-separated (default: the scheduled plan)")
	from := fs.String("from", "", "first billing period of a range (YYYYMM)")
	to := fs.String("to", "", "last billing period of a range (YYYYMM; default: current)")
	source := fs.String("source", "", "usageDetails or costDetails for every scope (default: per scope from settings)")
	format := fs.String("format", "auto", "auto (table on a terminal, JSON otherwise), table or json")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	cfg, err := sf.load(true, true)
	if err != nil {
		return exitError{code: exitUsage, msg: err.Error()}
	}
	if *source != "" && *source != export.SourceUsageDetails && *source != export.SourceCostDetails {
		return exitError{code: exitUsage, msg: fmt.Sprintf("--source %q: want usageDetails or costDetails", *source)}
	}
	now := time.Now()
	pp, err := planExport(ctx, *periods, *from, *to, cfg, now)
	if err != nil {
		return exitError{code: exitUsage, msg: err.Error()}
	}
	log := newLogger(stderr, cfg.LogLevel)
	ctx = log.WithContext(ctx)
	parts := pp.Partitions
	var reader plan.Reader = emptyReader{}
	st, err := openReadStore(ctx, cfg)
	switch {
	case errors.Is(err, store.ErrNotFound):
		log.Info().Msg("the output does not exist yet: nothing is committed")
	case err != nil:
		return err
	default:
		if reader, err = newPlanReader(ctx, readOnlyExporter(st, cfg)); err != nil {
			return err
		}
	}
	pl, err := plan.Make(ctx, reader, parts, sourceChoice(cfg, *source, now), planBudget(cfg), now, cfg.RestatementDays)
	if err != nil {
		return err
	}
	return writeReport(stdout, *format, pl, func(w io.Writer) { writePlanTable(w, pl) })
}

func writePlanTable(w io.Writer, pl *plan.Plan) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCOPE\tMETRIC\tPERIOD\tSTATUS\tSOURCE\tACTION\tCOMMITTED\tCALLS\tWHY")
	for _, p := range pl.Partitions {
		committed := "-"
		if p.Committed != nil {
			committed = fmt.Sprintf("%d rows, %s", p.Committed.Rows, p.Committed.FinishedTime.UTC().Format("2006-01-02 15:04"))
		}
		if p.HeldRuns > 0 {
			committed += fmt.Sprintf(" (+%d held)", p.HeldRuns)
		}
		calls := fmt.Sprint(p.Calls.Calls)
		if !p.Calls.Known {
			calls = "unknown, ~" + calls
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Scope, p.Metric, p.BillingPeriod, p.PeriodStatus,
			p.Source.Source, p.Action, committed, calls, p.Source.Reason+"; "+p.Calls.Basis)
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCOPE\tKIND\tCALLS\tCALLS/MIN\tTIME")
	scopes := append([]plan.ScopeTime(nil), pl.Scopes...)
	sort.SliceStable(scopes, func(i, j int) bool { return scopes[i].Scope < scopes[j].Scope })
	for _, s := range scopes {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%g\t%s\n", s.Scope, s.Kind, s.Calls, s.CallsPerMinute, minutes(s.Minutes))
	}
	_ = tw.Flush()
	unknown := ""
	if pl.Unknown > 0 {
		unknown = fmt.Sprintf(" (%d partitions estimated)", pl.Unknown)
	}
	fmt.Fprintf(w, "\n%d partitions, %d calls%s, about %s under the budget (tenant %g calls/min).\n%s.\n",
		len(pl.Partitions), pl.Calls, unknown, minutes(pl.Minutes), pl.Tenant, strings.ToUpper(pl.Note[:1])+pl.Note[1:])
}

func minutes(m float64) string {
	if m >= 90 {
		return fmt.Sprintf("%.1f h", m/60)
	}
	return fmt.Sprintf("%.1f min", m)
}
