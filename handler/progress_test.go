package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/sandbox"
	"github.com/usage-export/usage-export/internal/sandbox/sandboxtest"
	"github.com/usage-export/usage-export/internal/scope"
	"github.com/usage-export/usage-export/internal/testutil"
)

// terminal is a small VT100 model: enough of one for what the handler writes (text, CR, LF,
// "erase to end of line", colour codes). It keeps the screen's lines and every bar drawn.
type terminal struct {
	lines []string
	row   int
	col   int
}

var csi = regexp.MustCompile(`^\x1b\[[0-9;?]*[A-Za-z]`)

func (t *terminal) feed(b []byte) {
	s := string(b)
	for len(s) > 0 {
		if len(t.lines) == 0 {
			t.lines = []string{""}
		}
		line := []rune(t.lines[t.row])
		switch c := s[0]; {
		case c == '\r':
			t.col, s = 0, s[1:]
		case c == '\n':
			t.row++
			t.col = 0
			if t.row == len(t.lines) {
				t.lines = append(t.lines, "")
			}
			s = s[1:]
		case c == 0x1b:
			seq := csi.FindString(s)
			if seq == "" {
				s = s[1:]
				continue
			}
			if strings.HasSuffix(seq, "K") && t.col < len(line) {
				t.lines[t.row] = string(line[:t.col])
			}
			s = s[len(seq):]
		default:
			r := []rune(s)[0]
			for len(line) < t.col {
				line = append(line, ' ')
			}
			if t.col < len(line) {
				line[t.col] = r
			} else {
				line = append(line, r)
			}
			t.lines[t.row] = string(line)
			t.col++
			s = s[len(string(r)):]
		}
	}
}

func (t *terminal) screen() string { return strings.Join(t.lines, "\n") }

// ptyRun starts the handler binary with stderr on a pseudo-terminal (stdout, the summary, on a
// pipe) and returns the raw terminal output as it arrives.
type ptyRun struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	mu     sync.Mutex
	raw    []byte
	done   chan struct{}
}

func startPTY(t *testing.T, env []string, args ...string) *ptyRun {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 50, Cols: 200}); err != nil {
		t.Fatal(err)
	}
	r := &ptyRun{cmd: exec.Command(testutil.HandlerBinary(t), args...), done: make(chan struct{})}
	r.cmd.Env = append(cleanEnv(), env...)
	r.cmd.Stderr = tty
	r.cmd.Stdout = &r.stdout
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	go func() {
		defer close(r.done)
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			r.mu.Lock()
			r.raw = append(r.raw, buf[:n]...)
			r.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		_ = r.cmd.Process.Kill()
		ptmx.Close()
	})
	return r
}

func (r *ptyRun) output() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]byte(nil), r.raw...)
}

func (r *ptyRun) wait(t *testing.T) int {
	t.Helper()
	err := r.cmd.Wait()
	<-r.done
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

var barLine = regexp.MustCompile(`^\[[#.]{24}\] \d+/\d+ committed`)

// TestProgressOnTerminal runs an export on a pseudo-terminal and checks the screen: every log
// line on its own line, the bar alone on the last line, live received bytes before the first
// partition commits, and the final bar counting committed partitions. It saves the screen as the
// figure of the closing note when PTY_SCREEN names a file.
func TestProgressOnTerminal(t *testing.T) {
	sb := sandboxtest.Start(t, &sandbox.Options{RecordsPerDay: 20, PageLatency: 40 * time.Millisecond})
	var scopes []string
	for _, s := range sb.Scopes() {
		if s.Kind == scope.EnrollmentAccount && len(scopes) < 2 {
			scopes = append(scopes, s.String())
		}
	}
	now := period.Of(time.Now())
	r := startPTY(t, []string{"USAGE_EXPORT_TOKEN=" + sb.Token()}, "export", "--endpoint", sb.URL(),
		"--scopes", strings.Join(scopes, ","), "--from", now.Add(-3).String(), "--to", now.Add(-1).String(),
		"--output-dir", t.TempDir(), "--rate-per-scope", "100000")
	if code := r.wait(t); code != exitOK {
		t.Fatalf("exit %d:\n%s", code, r.output())
	}
	raw := r.output()
	var term terminal
	term.feed(raw)
	screen := strings.TrimRight(term.screen(), "\n")
	t.Logf("screen:\n%s", screen)
	if f := os.Getenv("PTY_SCREEN"); f != "" {
		_ = os.WriteFile(f, []byte(screen+"\n"), 0o644)
	}
	lines := strings.Split(screen, "\n")
	last := lines[len(lines)-1]
	if !barLine.MatchString(last) || !strings.Contains(last, "6/6 committed") {
		t.Errorf("last line %q: want the final bar, 6/6 committed", last)
	}
	logs := 0
	for _, l := range lines[:len(lines)-1] {
		if strings.Contains(l, "committed  ") && strings.Contains(l, "INF") {
			t.Errorf("a log line and the bar share a line: %q", l)
		}
		if barLine.MatchString(l) {
			t.Errorf("a bar above the last line: %q", l)
		}
		if strings.Contains(l, "INF") {
			logs++
		}
	}
	if logs < 6 {
		t.Errorf("%d log lines on the screen, want at least one per partition", logs)
	}
	// Every bar drawn (the text after each "erase line"), in order: bytes are live.
	var liveBeforeCommit bool
	for _, seg := range strings.Split(string(raw), clearLine) {
		seg = stripCSI(seg)
		if barLine.MatchString(seg) && strings.Contains(seg, " 0/6 committed") && !strings.Contains(seg, " 0.0 MiB received") {
			liveBeforeCommit = true
		}
	}
	if !liveBeforeCommit {
		t.Error("no bar showed received bytes before the first partition committed")
	}
	var sum runSummary
	if err := json.Unmarshal(r.stdout.Bytes(), &sum); err != nil {
		t.Errorf("summary on stdout: %v", err)
	}
}

func stripCSI(s string) string {
	return regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`).ReplaceAllString(s, "")
}

// TestInterruptOnTerminal presses Ctrl-C (SIGINT) in the middle of an export: the summary counts
// the saved parts and says the next run resumes them, and the next run does.
func TestInterruptOnTerminal(t *testing.T) {
	sb := sandboxtest.Start(t, &sandbox.Options{RecordsPerDay: 20, PageLatency: 150 * time.Millisecond})
	var sc string
	for _, s := range sb.Scopes() {
		if s.Kind == scope.EnrollmentAccount {
			sc = s.String()
			break
		}
	}
	now := period.Of(time.Now())
	dir := t.TempDir()
	args := []string{"export", "--endpoint", sb.URL(), "--scopes", sc, "--from", now.Add(-6).String(), "--to", now.Add(-1).String(),
		"--output-dir", dir, "--rate-per-scope", "100000", "--part-days", "1"}
	env := []string{"USAGE_EXPORT_TOKEN=" + sb.Token()}
	r := startPTY(t, env, args...)
	deadline := time.Now().Add(60 * time.Second)
	for !regexp.MustCompile(`\] [1-9]/6 committed`).Match(r.output()) {
		if time.Now().After(deadline) {
			t.Fatalf("no progress:\n%s", r.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := r.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	code := r.wait(t)
	var term terminal
	term.feed(r.output())
	screen := term.screen()
	t.Logf("screen after Ctrl-C:\n%s", screen)
	if code != exitFailed {
		t.Errorf("exit %d, want %d", code, exitFailed)
	}
	var sum runSummary
	if err := json.Unmarshal(r.stdout.Bytes(), &sum); err != nil || sum.Interrupted == nil {
		t.Fatalf("summary: %v\n%s", err, r.stdout.String())
	}
	// What the summary says was saved is what its rows say: committed partitions, and the
	// checkpointed parts of the others.
	in := sum.Interrupted
	committed, parts := 0, 0
	for _, p := range sum.Partitions {
		if p.Status == "committed" {
			committed++
		} else {
			parts += p.Parts
		}
	}
	if committed == 0 || committed == len(sum.Partitions) {
		t.Fatalf("%d of %d partitions committed: the interrupt came too early or too late", committed, len(sum.Partitions))
	}
	if parts != in.SavedParts || !strings.HasPrefix(in.Message, plural(committed, "partition")+" committed; ") {
		t.Errorf("interrupted %+v; the summary rows say %d committed and %d parts saved", in, committed, parts)
	}
	if !strings.Contains(screen, "interrupted: "+in.Message[:20]) || !strings.Contains(screen, fmt.Sprintf("%d/%d committed, %d interrupted", committed, len(sum.Partitions), len(sum.Partitions)-committed)) {
		t.Errorf("the screen does not show what was saved")
	}

	again := startPTY(t, env, args...)
	if code := again.wait(t); code != exitOK {
		t.Fatalf("second run: exit %d\n%s", code, again.output())
	}
}

// TestInterruptedCounts: the interruption counts the checkpointed parts of the partitions that
// did not commit (not those of committed ones), and puts them into the summary's rows.
func TestInterruptedCounts(t *testing.T) {
	sc, _ := scope.Parse("/subscriptions/00000000-0000-0000-0000-000000000001")
	pa := export.Partition{Scope: sc, Period: period.Period{Year: 2026, Month: 1}, Metric: "actualcost"}
	pb := export.Partition{Scope: sc, Period: period.Period{Year: 2026, Month: 2}, Metric: "actualcost"}
	pc := export.Partition{Scope: sc, Period: period.Period{Year: 2026, Month: 3}, Metric: "actualcost"}
	stopped := false
	v, _, err := newProgress(progressNone, io.Discard, 3, func() bool { return stopped })
	if err != nil {
		t.Fatal(err)
	}
	v.mode = progressLines // count, but draw into io.Discard
	v.update(export.Progress{Partition: pa, Rows: 300, PartsSaved: 10, RowsSaved: 300})
	v.update(export.Progress{Partition: pa, Done: true, Status: export.StatusCommitted, Rows: 300})
	v.update(export.Progress{Partition: pb, Rows: 500, PartsSaved: 13, RowsSaved: 390, Received: 1 << 20})
	v.update(export.Progress{Partition: pc, Rows: 20})
	stopped = true
	v.update(export.Progress{Partition: pb, Done: true, Status: export.StatusFailed})
	v.update(export.Progress{Partition: pc, Done: true, Status: export.StatusFailed})
	sum := &export.Summary{Partitions: []export.Result{
		{Partition: pa, Status: export.StatusCommitted, Parts: 10},
		{Partition: pb, Status: export.StatusFailed},
		{Partition: pc, Status: export.StatusFailed},
	}}
	in := v.interrupted(sum)
	want := "1 partition committed; 13 parts (390 rows) of 1 unfinished partition are saved, and the next run with the same settings resumes after them"
	if in.SavedParts != 13 || in.SavedRows != 390 || in.Message != want {
		t.Errorf("interruption %+v, want 13 parts, 390 rows, %q", in, want)
	}
	if sum.Partitions[1].Parts != 13 || sum.Partitions[2].Parts != 0 || sum.Partitions[0].Parts != 10 {
		t.Errorf("summary parts %d %d %d, want 10 13 0", sum.Partitions[0].Parts, sum.Partitions[1].Parts, sum.Partitions[2].Parts)
	}
	if bar := v.barText(v.totalsLocked()); !strings.Contains(bar, "1/3 committed, 2 interrupted") || !strings.Contains(bar, "1.0 MiB received") {
		t.Errorf("bar %q", bar)
	}
}

// TestInterruptSavesParts presses Ctrl-C while a partition is listed in steps (its previous
// export is too large for one listing at a slow budget: 4 calls an hour): the first step is
// checkpointed, the summary and the screen count its parts and rows and say the next run
// resumes after them, and the next run (same settings but a fast budget) resumes that
// partition.
func TestInterruptSavesParts(t *testing.T) {
	sb := sandboxtest.Start(t, &sandbox.Options{RecordsPerDay: 20})
	var sc string
	for _, s := range sb.Scopes() {
		if s.Kind == scope.EnrollmentAccount {
			sc = s.String()
			break
		}
	}
	last := period.Of(time.Now()).Add(-1).String()
	dir := t.TempDir()
	env := []string{"USAGE_EXPORT_TOKEN=" + sb.Token()}
	base := []string{"export", "--endpoint", sb.URL(), "--scopes", sc, "--periods", last, "--output-dir", dir, "--source", "usageDetails"}
	fast := append(append([]string{}, base...), "--rate-per-scope", "100000")
	if code := startPTY(t, env, fast...).wait(t); code != exitOK {
		t.Fatalf("first export: exit %d", code)
	}

	slow := startPTY(t, env, append(append([]string{}, base...), "--rate-per-scope", "4", "--rate-window", "1h")...)
	deadline := time.Now().Add(60 * time.Second)
	for !regexp.MustCompile(`INF page .*more=false`).Match([]byte(stripCSI(string(slow.output())))) {
		if time.Now().After(deadline) {
			t.Fatalf("the first step did not finish:\n%s", slow.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // the step's parts are checkpointed right after its last page
	if err := slow.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	code := slow.wait(t)
	var term terminal
	term.feed(slow.output())
	screen := term.screen()
	t.Logf("screen after Ctrl-C:\n%s", screen)
	if !strings.Contains(screen, "listing it in steps") {
		t.Fatalf("the partition was not listed in steps")
	}
	var sum runSummary
	if err := json.Unmarshal(slow.stdout.Bytes(), &sum); err != nil || sum.Interrupted == nil || code != exitFailed {
		t.Fatalf("exit %d, summary %v\n%s", code, err, slow.stdout.String())
	}
	in := sum.Interrupted
	if in.SavedParts == 0 || in.SavedRows == 0 || sum.Partitions[0].Parts != in.SavedParts ||
		!strings.Contains(in.Message, "the next run with the same settings resumes after them") {
		t.Errorf("interrupted %+v, partition parts %d: want saved parts and rows, the same in the row", in, sum.Partitions[0].Parts)
	}
	if !strings.Contains(screen, "interrupted: 0 partitions committed; "+plural(in.SavedParts, "part")) {
		t.Errorf("the screen does not count the saved parts")
	}

	again := startPTY(t, env, fast...)
	if code := again.wait(t); code != exitOK {
		t.Fatalf("next run: exit %d\n%s", code, again.output())
	}
	var sum2 runSummary
	if err := json.Unmarshal(again.stdout.Bytes(), &sum2); err != nil || !sum2.Partitions[0].Resumed {
		t.Errorf("the next run did not resume the partition: %v %+v", err, sum2.Partitions)
	}
}
