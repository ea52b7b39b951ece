package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/usage-export/usage-export/functions"
	"github.com/usage-export/usage-export/internal/config"
	"github.com/usage-export/usage-export/internal/export"
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
	plan, err := planPeriods(*periods, *from, *to, cfg, time.Now())
	if err != nil {
		return exitError{code: exitUsage, msg: err.Error()}
	}
	parts := functions.Partitions(cfg.Scopes, plan, cfg.Metrics)
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
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		rs := newRunSummary(sum, a.budget.Stats())
		rs.Interrupted = interrupted
		_ = enc.Encode(rs)
	}
	if interrupted != nil {
		return exitError{code: exitFailed, msg: "interrupted: " + interrupted.Message}
	}
	if err != nil {
		return err
	}
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

// planPeriods turns the period flags into a list of periods.
func planPeriods(list, from, to string, cfg *config.Config, now time.Time) ([]period.Period, error) {
	switch {
	case list != "" && (from != "" || to != ""):
		return nil, fmt.Errorf("use --periods or --from/--to, not both")
	case list != "":
		var out []period.Period
		for _, s := range strings.Split(list, ",") {
			p, err := period.Parse(strings.TrimSpace(s))
			if err != nil {
				return nil, err
			}
			if period.Of(now).Before(p) {
				return nil, fmt.Errorf("billing period %s is in the future", p)
			}
			out = append(out, p)
		}
		return out, nil
	case from != "" || to != "":
		if from == "" {
			return nil, fmt.Errorf("--to needs --from")
		}
		first, err := period.Parse(from)
		if err != nil {
			return nil, err
		}
		last := period.Of(now)
		if to != "" {
			if last, err = period.Parse(to); err != nil {
				return nil, err
			}
		}
		if period.Of(now).Before(last) {
			return nil, fmt.Errorf("billing period %s is in the future", last)
		}
		return period.Range(first, last, cfg.MaxMonths)
	}
	return period.Scheduled(now, cfg.RestatementDays), nil
}
