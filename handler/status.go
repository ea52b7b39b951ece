package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/usage-export/usage-export/internal/config"
	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/plan"
	"github.com/usage-export/usage-export/internal/redact"
	"github.com/usage-export/usage-export/internal/scope"
	"github.com/usage-export/usage-export/internal/status"
)

// writeStatusTable prints the report for a person.
func writeStatusTable(w io.Writer, rep *status.Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCOPE\tMETRIC\tPERIOD\tSTATUS\tSOURCE\tROWS\tTOTAL\tAGE\tLAST RUN\tWAITING")
	for _, p := range rep.Partitions {
		var totals []string
		for cur, v := range p.Totals {
			totals = append(totals, shortDecimal(v)+" "+cur)
		}
		sort.Strings(totals)
		age, last := "-", "-"
		if p.LastRun != nil {
			age = humanAge(time.Duration(p.LastRun.AgeSeconds) * time.Second)
			last = p.LastRun.ExecutionType + " " + shortID(p.LastRun.RunID)
		}
		var waiting []string
		for _, h := range p.Held {
			waiting = append(waiting, fmt.Sprintf("held %s (%d rows)", h.RunID, h.Rows))
		}
		if p.Unfinished {
			waiting = append(waiting, "unfinished: next run resumes")
		}
		if len(waiting) == 0 {
			waiting = []string{"-"}
		}
		rows := fmt.Sprint(p.Rows)
		if !p.Committed {
			rows = "not committed"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Scope, p.Metric, p.BillingPeriod, p.PeriodStatus,
			orDash(p.Source), rows, orDash(strings.Join(totals, ", ")), age, last, strings.Join(waiting, "; "))
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\n%d partitions, %d rows; %d held runs waiting, %d unfinished\n", rep.Count, rep.Rows, rep.Held, rep.Unfinished)
	if rep.Held > 0 {
		fmt.Fprintln(w, "publish or discard a held run: handler publish RUN_ID / handler discard RUN_ID")
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// shortDecimal cuts an exact decimal to two places for the table (the JSON keeps every digit).
func shortDecimal(s string) string {
	if i := strings.IndexByte(s, '.'); i >= 0 && len(s) > i+3 {
		return s[:i+3]
	}
	return s
}

func humanAge(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}

// readOnlyExporter is an exporter over st for the control-tree operations (status, publish,
// discard, clean); it runs no export.
func readOnlyExporter(st export.Store, cfg *config.Config) *export.Exporter {
	return export.New(st, func(scope.Scope) (export.Source, error) {
		return nil, errors.New("no source: this exporter only reads and tidies the output")
	}, &export.Options{Prefix: cfg.Prefix, LeaseTTL: time.Duration(cfg.LeaseSeconds) * time.Second})
}

// parseStatusFilter turns the filter flags into a filter.
func parseStatusFilter(scopes, periods, from, to, metrics string, cfg *config.Config, now time.Time) (status.Filter, error) {
	var f status.Filter
	var err error
	if f.Scopes, err = config.ParseScopes(scopes); err != nil {
		return f, fmt.Errorf("--scope: %w", err)
	}
	if periods != "" || from != "" || to != "" {
		list, err := planPeriods(periods, from, to, cfg, now)
		if err != nil {
			return f, err
		}
		f.Periods = map[string]bool{}
		for _, p := range list {
			f.Periods[p.String()] = true
		}
	}
	for _, m := range strings.Split(metrics, ",") {
		if m = strings.TrimSpace(strings.ToLower(m)); m != "" {
			if f.Metrics == nil {
				f.Metrics = map[string]bool{}
			}
			f.Metrics[m] = true
		}
	}
	return f, nil
}

// cmdStatus prints what has been exported.
func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	usageFunc(fs, "status [flags]\n\nShow what has been exported, read from the manifests: per partition its rows, totals, period\nstatus, source, age, last run, held runs waiting and unfinished runs. A table on a terminal,\nJSON otherwise (--format). Reads only.")
	sf := addSettingFlags(fs, config.UseStore)
	scopes := fs.String("scope", "", "only these scopes (comma-separated)")
	periods := fs.String("periods", "", "only these billing periods YYYYMM (comma-separated)")
	from := fs.String("from", "", "only billing periods from this one (YYYYMM)")
	to := fs.String("to", "", "only billing periods up to this one (YYYYMM; default: current)")
	metrics := fs.String("metric", "", "only these metrics (comma-separated)")
	format := fs.String("format", "auto", "auto (table on a terminal, JSON otherwise), table or json")
	restatement := fs.Int("restatement-days", config.DefaultRestatementDays, "days after month end a period still changes (for the period status)")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	cfg, err := sf.load(false, true)
	if err != nil {
		return exitError{code: exitUsage, msg: err.Error()}
	}
	now := time.Now()
	filter, err := parseStatusFilter(*scopes, *periods, *from, *to, *metrics, cfg, now)
	if err != nil {
		return exitError{code: exitUsage, msg: err.Error()}
	}
	log := newLogger(stderr, cfg.LogLevel)
	ctx = log.WithContext(ctx)
	st, err := openReadStore(ctx, cfg)
	if err != nil {
		return err
	}
	rep, err := status.Collect(ctx, st, readOnlyExporter(st, cfg), cfg.Prefix, *restatement, filter, now)
	if err != nil {
		return err
	}
	return writeReport(stdout, *format, rep, func(w io.Writer) { writeStatusTable(w, rep) })
}

// writeReport writes v as a table on a terminal (or --format table) and as indented JSON
// otherwise.
func writeReport(w io.Writer, format string, v any, table func(io.Writer)) error {
	switch format {
	case "table":
		table(w)
		return nil
	case "json":
	case "auto":
		if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
			table(w)
			return nil
		}
	default:
		return exitError{code: exitUsage, msg: fmt.Sprintf("--format %q: want auto, table or json", format)}
	}
	return writeJSON(w, v)
}

// writeJSON writes v as indented JSON: the one writer of the CLI's JSON reports (export's run
// summary, status, plan, verify, publish, discard, clean), so secrets in the partitions' error
// text are removed here (redact.JSON), once.
func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(redact.JSON(b), '\n'))
	return err
}

// openOutput loads the settings of a command that only reads and tidies the output (status
// aside, which checks its filter flags first) and opens the output's store; the context it
// returns carries the command's logger.
func openOutput(ctx context.Context, sf *settingFlags, stderr io.Writer) (context.Context, *config.Config, export.Store, error) {
	cfg, err := sf.load(false, true)
	if err != nil {
		return ctx, nil, nil, exitError{code: exitUsage, msg: err.Error()}
	}
	ctx = newLogger(stderr, cfg.LogLevel).WithContext(ctx)
	st, err := openReadStore(ctx, cfg)
	if err != nil {
		return ctx, nil, nil, err
	}
	return ctx, cfg, st, nil
}

// cmdHeld publishes or discards a held run (action "publish" or "discard").
func cmdHeld(ctx context.Context, action string, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(action, flag.ContinueOnError)
	what := "Publish a run the drop guard held back: its parts replace the live ones, its manifest is\nwritten last (refused when the live export changed since it was held)."
	if action == "discard" {
		what = "Discard a run the drop guard held back; the live export stays as it is."
	}
	usageFunc(fs, action+" [flags] RUN_ID\n\n"+what+" handler status lists held runs.")
	sf := addSettingFlags(fs, config.UseStore)
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return exitError{code: exitUsage, msg: action + " takes one run id (handler status lists held runs)"}
	}
	ctx, cfg, st, err := openOutput(ctx, sf, stderr)
	if err != nil {
		return err
	}
	log := zerolog.Ctx(ctx)
	e := readOnlyExporter(st, cfg)
	id := fs.Arg(0)
	out := map[string]any{"runId": id, "action": action}
	if action == "publish" {
		m, err := e.PublishHeld(ctx, id)
		if err != nil {
			return heldError(err)
		}
		out["scope"], out["billingPeriod"], out["metric"], out["rows"] = m.Scope, m.BillingPeriod, m.Metric, m.DataRowCount
		if r := rebuildFocus(ctx, cfg, st, m); r != nil {
			out["focus"] = r
		}
		log.Info().Str("run_id", id).Int64("rows", m.DataRowCount).Msg("held run published")
	} else {
		if err := e.DiscardHeld(ctx, id); err != nil {
			return heldError(err)
		}
		log.Info().Str("run_id", id).Msg("held run discarded")
	}
	return writeJSON(stdout, out)
}

func heldError(err error) error {
	switch {
	case errors.Is(err, export.ErrNoHeldRun):
		return exitError{code: exitUsage, msg: err.Error()}
	case errors.Is(err, export.ErrHeldStale), errors.Is(err, export.ErrRunActive):
		return exitError{code: exitAttended, msg: err.Error()}
	}
	return err
}

// cmdClean removes expired run folders.
func cmdClean(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("clean", flag.ContinueOnError)
	usageFunc(fs, fmt.Sprintf("clean [flags]\n\nRemove run folders of the control tree that the rule expires: held runs %d days after they\nwere held, abandoned run folders %d days after their last write. Unfinished runs are kept.",
		int(export.DefaultHeldRetention.Hours()/24), int(export.DefaultAbandonedRetention.Hours()/24)))
	sf := addSettingFlags(fs, config.UseStore)
	dry := fs.Bool("dry-run", false, "only list what would be removed")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	ctx, cfg, st, err := openOutput(ctx, sf, stderr)
	if err != nil {
		return err
	}
	removed, err := readOnlyExporter(st, cfg).Clean(ctx, time.Now(), nil, *dry)
	if err != nil {
		return err
	}
	type folder struct {
		RunID   string    `json:"runId"`
		Folder  string    `json:"folder"`
		Held    bool      `json:"held"`
		Newest  time.Time `json:"lastWritten"`
		Objects int       `json:"objects"`
		Bytes   int64     `json:"bytes"`
	}
	out := struct {
		DryRun  bool     `json:"dryRun"`
		Removed []folder `json:"removed"`
	}{DryRun: *dry, Removed: []folder{}}
	for _, f := range removed {
		out.Removed = append(out.Removed, folder{f.RunID, f.Dir, f.Held != nil, f.Newest.UTC(), f.Objects, f.Bytes})
	}
	return writeJSON(stdout, out)
}

// inventory answers the partitions API and dry runs (functions.Inventory) over the app's store.
type inventory struct {
	cfg *config.Config
	st  export.Store
	e   *export.Exporter
}

func newInventory(cfg *config.Config, st export.Store) *inventory {
	return &inventory{cfg: cfg, st: st, e: readOnlyExporter(st, cfg)}
}

func (v *inventory) Status(ctx context.Context, f status.Filter) (*status.Report, error) {
	return status.Collect(ctx, v.st, v.e, v.cfg.Prefix, v.cfg.RestatementDays, f, time.Now())
}

func (v *inventory) PublishHeld(ctx context.Context, runID string) (*manifest.Manifest, error) {
	return v.e.PublishHeld(ctx, runID)
}

func (v *inventory) DiscardHeld(ctx context.Context, runID string) error {
	return v.e.DiscardHeld(ctx, runID)
}

func (v *inventory) Plan(ctx context.Context, parts []export.Partition, source string) (*plan.Plan, error) {
	r, err := newPlanReader(ctx, v.e)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	return plan.Make(ctx, r, parts, sourceChoice(v.cfg, source, now), planBudget(v.cfg), now, v.cfg.RestatementDays)
}

func (v *inventory) Clean(ctx context.Context) ([]export.RunFolder, error) {
	return v.e.Clean(ctx, time.Now(), nil, false)
}
