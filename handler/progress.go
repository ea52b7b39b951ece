package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
	"golang.org/x/term"

	"github.com/usage-export/usage-export/internal/export"
)

// Progress modes of `handler export --progress`.
const (
	progressAuto  = "auto"  // bar on a terminal, lines otherwise
	progressBar   = "bar"   // logs above, one bar line below (a terminal)
	progressLines = "lines" // one line per finished partition
	progressNone  = "none"
)

// barRedraw bounds how often page progress redraws the bar.
const barRedraw = 100 * time.Millisecond

// screen shares a terminal between log lines and one bar line below them: every log write
// clears the bar, prints the lines and draws the bar again under them, so the two never share
// a line. It is safe for concurrent use.
type screen struct {
	mu  sync.Mutex
	w   io.Writer
	fd  int
	bar string
}

// clearLine is carriage return and "erase to end of line".
const clearLine = "\r\x1b[K"

func (s *screen) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bar != "" {
		_, _ = io.WriteString(s.w, clearLine)
	}
	n, err := s.w.Write(p)
	if s.bar != "" {
		_, _ = io.WriteString(s.w, s.bar)
	}
	return n, err
}

// draw replaces the bar line, cut to the terminal's width so that it never wraps.
func (s *screen) draw(bar string) {
	width := 80
	if w, _, err := term.GetSize(s.fd); err == nil && w > 0 {
		width = w
	}
	if r := []rune(bar); len(r) > width-1 {
		bar = string(r[:width-1])
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bar = bar
	_, _ = io.WriteString(s.w, clearLine+bar)
}

// end leaves the last bar on its own line.
func (s *screen) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bar != "" {
		_, _ = io.WriteString(s.w, "\n")
		s.bar = ""
	}
}

// progressView follows a run's progress: per partition the latest report, drawn as a bar on a
// terminal or as a line per finished partition.
type progressView struct {
	mode  string
	w     io.Writer
	scr   *screen
	total int
	start time.Time
	mu    sync.Mutex
	state map[string]export.Progress
	last  time.Time
	// stopped reports that the run was interrupted (Ctrl-C, SIGTERM): partitions that end
	// then are interrupted, not failed.
	stopped func() bool
}

// newProgress returns the view and the writer the logs must go to (the screen in bar mode).
func newProgress(mode string, w io.Writer, total int, stopped func() bool) (*progressView, io.Writer, error) {
	p := &progressView{mode: mode, w: w, total: total, start: time.Now(), state: map[string]export.Progress{}, stopped: stopped}
	f, tty := w.(*os.File)
	tty = tty && isatty.IsTerminal(f.Fd())
	switch mode {
	case progressAuto:
		p.mode = progressLines
		if tty {
			p.mode = progressBar
		}
	case progressBar:
		if !tty {
			return nil, nil, fmt.Errorf("--progress bar needs a terminal on stderr; use lines or none")
		}
	case progressLines, progressNone:
	default:
		return nil, nil, fmt.Errorf("--progress %q: want auto, bar, lines or none", mode)
	}
	if p.mode == progressBar {
		p.scr = &screen{w: w, fd: int(f.Fd())}
		return p, p.scr, nil
	}
	return p, w, nil
}

// totals adds up the partitions' latest reports.
type progressTotals struct {
	committed, failed, interrupted, other int
	rows, received                        int64
	partsSaved                            int
	rowsSaved                             int64
	unsavedPartitions                     int
}

func (p *progressView) totalsLocked() progressTotals {
	var t progressTotals
	for _, s := range p.state {
		t.rows += s.Rows
		t.received += s.Received
		switch {
		case s.Done && s.Status == export.StatusCommitted:
			t.committed++
		case s.Done && s.Status == export.StatusFailed && s.Pages < 0:
			t.interrupted++
		case s.Done && s.Status == export.StatusFailed:
			t.failed++
		case s.Done:
			t.other++
		}
		if s.Status != export.StatusCommitted && s.PartsSaved > 0 {
			t.partsSaved += s.PartsSaved
			t.rowsSaved += s.RowsSaved
			t.unsavedPartitions++
		}
	}
	return t
}

func (p *progressView) update(pr export.Progress) {
	if p.mode == progressNone {
		return
	}
	p.mu.Lock()
	key := pr.Partition.RelPath()
	if pr.Done && pr.Status == export.StatusFailed && p.stopped != nil && p.stopped() {
		pr.Pages = -1 // marks the partition interrupted, not failed
	}
	if pr.Done {
		// The end-of-partition report carries no live counters: keep the last ones.
		prev := p.state[key]
		pr.Received, pr.PartsSaved, pr.RowsSaved = prev.Received, prev.PartsSaved, prev.RowsSaved
		if pr.Rows == 0 {
			pr.Rows = prev.Rows
		}
	}
	p.state[key] = pr
	if !pr.Done && time.Since(p.last) < barRedraw {
		p.mu.Unlock()
		return
	}
	p.last = time.Now()
	t := p.totalsLocked()
	p.mu.Unlock()
	switch p.mode {
	case progressBar:
		p.scr.draw(p.barText(t))
	case progressLines:
		if pr.Done {
			fmt.Fprintf(p.w, "progress: %d/%d partitions committed, %d failed, %d rows, %s received\n",
				t.committed, p.total, t.failed, t.rows, mib(t.received))
		}
	}
}

func (p *progressView) barText(t progressTotals) string {
	const width = 24
	filled := width * (t.committed + t.failed + t.interrupted + t.other) / max(p.total, 1)
	var extra string
	if t.failed > 0 {
		extra += fmt.Sprintf(", %d failed", t.failed)
	}
	if t.interrupted > 0 {
		extra += fmt.Sprintf(", %d interrupted", t.interrupted)
	}
	if t.other > 0 {
		extra += fmt.Sprintf(", %d held or busy", t.other)
	}
	el := time.Since(p.start).Round(time.Second)
	return fmt.Sprintf("[%s%s] %d/%d committed%s  %d rows  %s received  %s",
		strings.Repeat("#", filled), strings.Repeat(".", width-filled), t.committed, p.total, extra, t.rows, mib(t.received), el)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func (p *progressView) done() {
	if p.scr != nil {
		p.mu.Lock()
		t := p.totalsLocked()
		p.mu.Unlock()
		p.scr.draw(p.barText(t))
		p.scr.end()
	}
}

// interruption is the summary's account of an interrupted run.
type interruption struct {
	SavedParts int    `json:"savedParts"`
	SavedRows  int64  `json:"savedRows"`
	Message    string `json:"message"`
}

// interrupted counts what an interrupted run saved (the checkpointed parts of partitions that did
// not commit), puts the counts into their summary rows, and says that the next run resumes them.
func (p *progressView) interrupted(sum *export.Summary) *interruption {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.totalsLocked()
	for i, r := range sum.Partitions {
		if s, ok := p.state[r.Partition.RelPath()]; ok && r.Status != export.StatusCommitted && s.PartsSaved > r.Parts {
			sum.Partitions[i].Parts = s.PartsSaved
		}
	}
	in := &interruption{SavedParts: t.partsSaved, SavedRows: t.rowsSaved}
	switch {
	case t.partsSaved > 0:
		in.Message = fmt.Sprintf("%s committed; %s (%d rows) of %s are saved, and the next run with the same settings resumes after them",
			plural(t.committed, "partition"), plural(t.partsSaved, "part"), t.rowsSaved, plural(t.unsavedPartitions, "unfinished partition"))
	default:
		in.Message = fmt.Sprintf("%s committed; nothing of the unfinished ones was saved yet, and the next run starts them again", plural(t.committed, "partition"))
	}
	return in
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
