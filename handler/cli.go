package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/usage-export/usage-export/internal/config"
	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/partplan"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/ratelimit"
	"github.com/usage-export/usage-export/internal/scope"
	sourcepkg "github.com/usage-export/usage-export/internal/source"
)

func cmdExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	usageFunc(fs, "export [flags]\n\nExport scopes × billing periods once; the run summary (JSON) goes to stdout, logs to stderr.")
	sf := addSettingFlags(fs, config.UseStore|config.UseRun)
	periods := fs.String("periods", "", "billing periods YYYYMM, comma-separated (default: the scheduled plan: current month, plus the previous one inside the restatement window)")
	from := fs.String("from", "", "first billing period of a range (YYYYMM)")
	to := fs.String("to", "", "last billing period of a range (YYYYMM; default: current)")
	source := fs.String("source", "", "auto, usageDetails or costDetails for every scope (default: per scope from settings; see docs/sources.md)")
	force := fs.Bool("force", false, "publish even when the drop guard would hold the export back")
	progress := fs.String("progress", "auto", "progress display: auto, bar, lines or none")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return exitError{code: exitUsage, msg: fmt.Sprintf("export takes no arguments, got %q", fs.Args())}
	}
	cfg, err := sf.load(true, true)
	if err != nil {
		return exitError{code: exitUsage, msg: err.Error()}
	}
	if !sourcepkg.Valid(*source) {
		return exitError{code: exitUsage, msg: fmt.Sprintf("--source %q: want auto, usageDetails or costDetails", *source)}
	}
	pl, err := planExport(ctx, *periods, *from, *to, cfg, time.Now())
	if err != nil {
		return exitError{code: exitUsage, msg: err.Error()}
	}
	parts := pl.Partitions
	bar, logOut, err := newProgress(*progress, stderr, len(parts), func() bool { return ctx.Err() != nil })
	if err != nil {
		return exitError{code: exitUsage, msg: err.Error()}
	}
	var log zerolog.Logger
	if bar.scr != nil {
		log = newLoggerTo(logOut, true, cfg.LogLevel)
	} else {
		log = newLogger(logOut, cfg.LogLevel)
	}
	ctx = log.WithContext(ctx)
	warnOverlaps(log, cfg)
	a, err := newApp(ctx, cfg, log)
	if err != nil {
		return err
	}
	a.forceSource = *source
	start := time.Now()
	sum, err := a.exporter("OnDemand", bar.update, *force).Run(ctx, parts)
	if err == nil {
		log.Info().Int("partitions", len(parts)).Int64("rows", sum.Rows).Int64("bytes", sum.Bytes).
			Float64("seconds", durationSince(start)).Msg("export finished")
	}
	bar.done()
	var interrupted *interruption
	if err != nil && ctx.Err() != nil && sum != nil {
		interrupted = bar.interrupted(sum)
	}
	if sum != nil {
		rs := newRunSummary(sum, a.budget.Stats())
		rs.Interrupted = interrupted
		_ = writeJSON(stdout, rs)
	}
	if interrupted != nil {
		return exitError{code: exitFailed, msg: "interrupted: " + interrupted.Message}
	}
	if err != nil {
		return err
	}
	return summaryExit(sum)
}

// summaryExit is the exit of a run that ended: failed when a partition failed, attention
// needed when one was not committed (held by the drop guard or busy), else nil.
func summaryExit(sum *export.Summary) error {
	if sum.Failed() > 0 {
		return exitError{code: exitFailed, msg: "export failed for some partitions:\n" + sum.Err().Error()}
	}
	for _, r := range sum.Partitions {
		if r.Status != export.StatusCommitted {
			return exitError{code: exitAttended, msg: fmt.Sprintf("%s %s %s: %s: %s", r.Scope, r.Period, r.Metric, r.Status, r.Error)}
		}
	}
	return nil
}

// runSummary is the CLI's run summary on stdout, published as docs/schemas/summary.schema.json:
// camelCase keys, durations in seconds as numbers.
type runSummary struct {
	*export.Summary
	RateBudget  rateBudget    `json:"rateBudget"`
	Interrupted *interruption `json:"interrupted,omitempty"`
}

// rateBudget is ratelimit.Stats for people.
type rateBudget struct {
	Calls         int64   `json:"calls"`
	Throttled     int64   `json:"throttled"`
	Pauses        int64   `json:"pauses"`
	WaitedSeconds float64 `json:"waitedSeconds"`
	Scopes        int     `json:"scopes"`
}

func newRunSummary(sum *export.Summary, st ratelimit.Stats) runSummary {
	return runSummary{Summary: sum, RateBudget: rateBudget{
		Calls: st.Calls, Throttled: st.Throttled, Pauses: st.Pauses, WaitedSeconds: st.Waited.Seconds(), Scopes: st.ScopesSeen,
	}}
}

// warnOverlaps names the configured scope pairs that contain each other (or may: the EA
// hierarchy is not visible in ids), since they double-count in a lake.
func warnOverlaps(log zerolog.Logger, cfg *config.Config) {
	for _, o := range scope.Overlaps(cfg.Scopes) {
		log.Warn().Str("scope_a", o.A.String()).Str("scope_b", o.B.String()).Str("relation", o.Relation.String()).
			Msg("configured scopes can double-count in a lake; see README 'Choosing scopes'")
	}
}

// planExport plans the partitions of the period flags (none: the scheduled periods, calendar
// months) over the configured scopes and metrics.
func planExport(ctx context.Context, list, from, to string, cfg *config.Config, now time.Time) (*partplan.Plan, error) {
	req := partplan.Request{From: from, To: to}
	if list != "" {
		for _, s := range strings.Split(list, ",") {
			req.Periods = append(req.Periods, strings.TrimSpace(s))
		}
	}
	pl, err := partplan.Make(ctx, cfg.Scopes, req, cfg.Metrics,
		&partplan.Options{Now: now, MaxMonths: cfg.MaxMonths, RestatementDays: cfg.RestatementDays})
	if err != nil {
		return nil, flagError(err)
	}
	return pl, nil
}

// planPeriods turns the period flags into a list of periods (none: the scheduled ones).
func planPeriods(list, from, to string, cfg *config.Config, now time.Time) ([]period.Period, error) {
	pl, err := planExport(context.Background(), list, from, to, cfg, now)
	if err != nil {
		return nil, err
	}
	return pl.Periods, nil
}

// flagError says a refused period request in terms of the flags.
func flagError(err error) error {
	var re *partplan.RequestError
	switch {
	case !errors.As(err, &re):
		return err
	case errors.Is(err, partplan.ErrPeriodsAndRange):
		return errors.New("use --periods or --from/--to, not both")
	case errors.Is(err, partplan.ErrToWithoutFrom):
		return errors.New("--to needs --from")
	case errors.Is(err, partplan.ErrTooManyMonths):
		return fmt.Errorf("%w (--max-months, %s)", err, config.EnvMaxMonths)
	case re.Field != "":
		return fmt.Errorf("--%s: %s", re.Field, re.Message())
	}
	return err
}
