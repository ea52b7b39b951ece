package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Row is one line of the table.
type Row struct {
	Scenario    string
	Records     int64
	JSONBytes   int64 // JSON-lines bytes (uncompressed)
	StoredBytes int64 // bytes written (gzip)
	Usage
	VsSDK  float64     // CPU per record ÷ the SDK baseline's (0 = not measured)
	VsGzip float64     // CPU ÷ gzip-only CPU over the same lines (0 = not applicable)
	Floor  float64     // export rows: the fetch + gzip only row's VsGzip for the same data
	Rate   *RateResult // the rate-limited run only
	Runs   int         // how many runs Usage combines (0 or 1: one)

	export bool // an exporter run (gets VsSDK)
}

// CPUPerRecord returns CPU seconds per record (0 without records).
func (r *Row) CPUPerRecord() float64 {
	if r.Records == 0 {
		return 0
	}
	return r.CPU.Seconds() / float64(r.Records)
}

// Utilisation returns lower bound ÷ wall time of the rate-limited run (1 = at the limit).
func (r *Row) Utilisation() float64 {
	if r.Rate == nil || r.Wall <= 0 {
		return 0
	}
	return r.Rate.LowerBound.Seconds() / r.Wall.Seconds()
}

func (r *Row) brief() string {
	return fmt.Sprintf("%d records, wall %.2f s, CPU %.2f s, %.2f µs/record, peak RSS %.1f MiB",
		r.Records, r.Wall.Seconds(), r.CPU.Seconds(), r.CPUPerRecord()*1e6, r.MaxRSSMiB())
}

// Target is one goal of the issue with the measured value.
type Target struct {
	Name  string
	Goal  string
	Value string
	Met   bool
}

// targets checks the report against the goals.
func targets(small, large volume, rep *Report, sdk float64) []Target {
	var out []Target
	add := func(name, goal string, value string, met bool) {
		out = append(out, Target{Name: name, Goal: goal, Value: value, Met: met})
	}
	for _, c := range []struct {
		store      string
		small, big *Row
	}{{"local", small.local, large.local}, {"Azurite", small.blob, large.blob}} {
		if c.big == nil {
			continue
		}
		add("peak RSS, large export → "+c.store, "≤ 100 MiB", fmt.Sprintf("%.1f MiB", c.big.MaxRSSMiB()), c.big.MaxRSSMiB() <= 100)
		if c.small != nil {
			ratio := float64(c.big.MaxRSS) / float64(c.small.MaxRSS)
			add("RSS large ÷ RSS small → "+c.store, "≤ 1.3", fmt.Sprintf("%.2f", ratio), ratio <= 1.3)
		}
	}
	for _, r := range rep.Rows {
		if r.export && r.Rate == nil && sdk > 0 {
			add("CPU/record vs SDK, "+r.Scenario, "≤ 0.10", fmt.Sprintf("%.3f (%.2f vs %.1f µs)", r.VsSDK, r.CPUPerRecord()*1e6, sdk*1e6), r.VsSDK <= 0.10)
		}
	}
	for _, r := range rep.Rows {
		if r.Rate != nil {
			x := r.Wall.Seconds() / r.Rate.LowerBound.Seconds()
			add("wall ÷ lower bound, "+r.Scenario, "≤ 1.10", fmt.Sprintf("%.3f (%.2f s vs %.2f s, %d pages, %d throttled)",
				x, r.Wall.Seconds(), r.Rate.LowerBound.Seconds(), r.Rate.Pages, r.Rate.Throttled), x <= 1.10)
		}
	}
	if rep.Startup.Median > 0 {
		add("start-up to readiness answer (median)", "≤ 100 ms", fmt.Sprintf("%.1f ms", ms(rep.Startup.Median)), rep.Startup.Median <= 100*time.Millisecond)
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// WriteMarkdown writes the report as Markdown: the table, the start-up line and the targets.
func (rep *Report) WriteMarkdown(w io.Writer) error {
	if err := rep.writePlan(w, true); err != nil {
		return err
	}
	if len(rep.Rows) == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteString("| scenario | records | JSON bytes | stored bytes | wall s | CPU s | CPU µs/record | peak RSS MiB | vs SDK | vs gzip-only | rate-limit use |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rep.Rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %.2f | %.2f | %s | %.1f | %s | %s | %s |\n",
			r.Scenario, count(r.Records), count(r.JSONBytes), count(r.StoredBytes), r.Wall.Seconds(), r.CPU.Seconds(),
			opt(r.CPUPerRecord()*1e6, "%.2f"), r.MaxRSSMiB(), opt(r.VsSDK, "%.3f"), opt(r.VsGzip, "%.2f"), opt(r.Utilisation(), "%.3f"))
	}
	if rep.Repeat > 1 {
		fmt.Fprintf(&b, "\n%s\n", rep.repeatNote())
	}
	if n := len(rep.Startup.Runs); n > 0 {
		var runs []string
		for _, d := range rep.Startup.Runs {
			runs = append(runs, fmt.Sprintf("%.1f", ms(d)))
		}
		fmt.Fprintf(&b, "\nStart-up (exec → first answer to GET /): median %.1f ms of %d runs (%s ms).\n",
			ms(rep.Startup.Median), n, strings.Join(runs, ", "))
	}
	b.WriteString("\n| target | goal | measured | met |\n|---|---|---|---|\n")
	for _, t := range rep.Targets {
		met := "yes"
		if !t.Met {
			met = "**no**"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", t.Name, t.Goal, t.Value, met)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteText writes the table aligned for a terminal.
func (rep *Report) WriteText(w io.Writer) error {
	if err := rep.writePlan(w, false); err != nil {
		return err
	}
	if len(rep.Rows) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\trecords\tJSON bytes\tstored bytes\twall s\tCPU s\tCPU µs/rec\tpeak RSS MiB\tvs SDK\tvs gzip\trate use\t")
	for _, r := range rep.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.2f\t%.2f\t%s\t%.1f\t%s\t%s\t%s\t\n",
			r.Scenario, count(r.Records), count(r.JSONBytes), count(r.StoredBytes), r.Wall.Seconds(), r.CPU.Seconds(),
			opt(r.CPUPerRecord()*1e6, "%.2f"), r.MaxRSSMiB(), opt(r.VsSDK, "%.3f"), opt(r.VsGzip, "%.2f"), opt(r.Utilisation(), "%.3f"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if rep.Repeat > 1 {
		fmt.Fprintf(w, "\n%s\n", rep.repeatNote())
	}
	if rep.Startup.Median > 0 {
		fmt.Fprintf(w, "\nstart-up: median %.1f ms to the first readiness answer (%d runs)\n", ms(rep.Startup.Median), len(rep.Startup.Runs))
	}
	fmt.Fprintln(w)
	for _, t := range rep.Targets {
		met := "met"
		if !t.Met {
			met = "MISSED"
		}
		fmt.Fprintf(w, "%-6s  %s: %s (goal %s)\n", met, t.Name, t.Value, t.Goal)
	}
	return nil
}

// repeatNote says how the repeated scenarios' figures were taken.
func (rep *Report) repeatNote() string {
	return fmt.Sprintf("Exports, gzip only and fetch + gzip only: median CPU and wall time of %d runs each, "+
		"and the highest peak RSS; the SDK baseline and the rate-limited run: one run.", rep.Repeat)
}

// count formats n with thin thousands separators ("" for 0).
func count(n int64) string {
	if n == 0 {
		return "–"
	}
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func opt(v float64, format string) string {
	if v == 0 {
		return "–"
	}
	return fmt.Sprintf(format, v)
}
