package faults

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/record"
	"github.com/usage-export/usage-export/internal/sandbox"
	"github.com/usage-export/usage-export/internal/store"
	"github.com/usage-export/usage-export/internal/testutil"
	"github.com/usage-export/usage-export/internal/verify"
)

// serve runs h on a new loopback listener until t ends and returns its base URL.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// hold stops the n-th request it is offered and closes fired: the moment to kill the client.
// The request stays held until the client goes away, or until release is closed (then it is
// served normally).
type hold struct {
	n       int64
	seen    int64
	half    bool // let half of the response body through first
	fired   chan struct{}
	once    sync.Once
	release chan struct{}
}

func newHold(n int64, half bool) *hold {
	return &hold{n: n, half: half, fired: make(chan struct{}), release: make(chan struct{})}
}

func (h *hold) fire() { h.once.Do(func() { close(h.fired) }) }

// gateway fronts a sandbox: it counts usageDetails requests and can hold one of them, before
// any byte of the response or after half of its body, until the client goes away.
type gateway struct {
	sb       *sandbox.Server
	url      string
	requests atomic.Int64
	mu       sync.Mutex
	hold     *hold
	byMetric map[string]int64 // usageDetails requests per metric parameter
	closed   chan struct{}
	// altToken, when set, is a second bearer token the gateway accepts for the sandbox's own,
	// counting its requests in altRequests: it tells two clients apart.
	altToken    string
	altRequests atomic.Int64
	// redirectTo, when set, is where the next usageDetails request is redirected (307), once.
	redirectTo atomic.Pointer[string]
	redirects  atomic.Int64
}

func newGateway(t *testing.T, o sandbox.Options) *gateway {
	t.Helper()
	sb, err := sandbox.New(&o)
	if err != nil {
		t.Fatal(err)
	}
	g := &gateway{sb: sb, closed: make(chan struct{}), byMetric: map[string]int64{}}
	t.Cleanup(func() { close(g.closed); sb.Close() })
	g.url = serve(t, g)
	return g
}

// setHold arms h for the requests from now on.
func (g *gateway) setHold(h *hold) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.hold = h
}

// metricRequests returns a copy of the request counts per metric.
func (g *gateway) metricRequests() map[string]int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return maps.Clone(g.byMetric)
}

func (g *gateway) take(metric string) *hold {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.byMetric[metric]++
	h := g.hold
	if h == nil {
		return nil
	}
	h.seen++
	if h.seen < h.n {
		return nil
	}
	g.hold = nil
	return h
}

// block waits until the client goes away, the gateway closes or h is released; it reports
// whether the request may still be served.
func (g *gateway) block(r *http.Request, h *hold) bool {
	select {
	case <-r.Context().Done():
	case <-g.closed:
	case <-h.release:
		return true
	}
	return false
}

func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if g.altToken != "" && r.Header.Get("Authorization") == "Bearer "+g.altToken {
		g.altRequests.Add(1)
		r.Header.Set("Authorization", "Bearer "+g.sb.Token())
	}
	if strings.Contains(strings.ToLower(r.URL.Path), "/usagedetails") {
		if to := g.redirectTo.Swap(nil); to != nil {
			g.redirects.Add(1)
			http.Redirect(w, r, *to+r.URL.RequestURI(), http.StatusTemporaryRedirect)
			return
		}
		g.requests.Add(1)
		if h := g.take(strings.ToLower(r.URL.Query().Get("metric"))); h != nil {
			if !h.half {
				h.fire()
				if !g.block(r, h) {
					return
				}
				g.sb.ServeHTTP(w, r)
				return
			}
			w = &halfWriter{ResponseWriter: w, g: g, h: h, r: r}
		}
	}
	g.sb.ServeHTTP(w, r)
}

// halfWriter passes the first half of the first body write through, then holds.
type halfWriter struct {
	http.ResponseWriter
	g    *gateway
	h    *hold
	r    *http.Request
	done bool
}

func (w *halfWriter) Write(p []byte) (int, error) {
	if w.done {
		return 0, io.ErrClosedPipe
	}
	w.done = true
	n, err := w.ResponseWriter.Write(p[:len(p)/2])
	if err == nil {
		err = http.NewResponseController(w.ResponseWriter).Flush()
	}
	w.h.fire()
	w.g.block(w.r, w.h)
	if err == nil {
		err = io.ErrClosedPipe
	}
	return n, err
}

func (w *halfWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// blobProxy fronts Azurite for the handler: it names every storage request (blobOp) and can
// hold the n-th request of one kind until the client goes away, which pins a crash point to a
// protocol step (a staged upload, a move, the manifest write, a lease renewal).
type blobProxy struct {
	rp     *httputil.ReverseProxy
	url    string
	mu     sync.Mutex
	op     string
	hold   *hold
	ops    []string
	closed chan struct{}
}

func newBlobProxy(t *testing.T, target string) *blobProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = ""
	p := &blobProxy{rp: httputil.NewSingleHostReverseProxy(u), closed: make(chan struct{})}
	p.rp.FlushInterval = -1
	p.rp.ErrorLog = nil
	t.Cleanup(func() { close(p.closed) })
	p.url = serve(t, p)
	return p
}

// setHold arms a hold on the n-th request of kind op from now on.
func (p *blobProxy) setHold(op string, h *hold) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.op, p.hold = op, h
}

// blobOp names a storage request: METHOD kind[:comp][:lease action], where kind is what the
// blob is in the export's layout.
func blobOp(r *http.Request) string {
	name := r.URL.Path
	kind := "other"
	switch {
	case strings.Contains(name, "/_control/leases/"):
		kind = "lease"
	case strings.Contains(name, "/_control/checkpoints/"):
		kind = "checkpoint"
	case strings.Contains(name, "/_control/runs/") && strings.HasSuffix(name, ".staged"):
		kind = "staged"
	case strings.Contains(name, "/_control/"):
		kind = "control"
	case path.Base(name) == manifest.FileName:
		kind = "manifest"
	case strings.HasPrefix(path.Base(name), "part-"):
		kind = "part"
	}
	op := r.Method + " " + kind
	if c := r.URL.Query().Get("comp"); c != "" {
		op += ":" + c
	}
	if a := r.Header.Get("x-ms-lease-action"); a != "" {
		op += ":" + a
	}
	return op
}

func (p *blobProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op := blobOp(r)
	p.mu.Lock()
	p.ops = append(p.ops, op)
	var h *hold
	if p.hold != nil && op == p.op {
		p.hold.seen++
		if p.hold.seen >= p.hold.n {
			h, p.hold = p.hold, nil
		}
	}
	p.mu.Unlock()
	if h != nil {
		h.fire()
		select {
		case <-r.Context().Done():
		case <-p.closed:
		}
		return
	}
	p.rp.ServeHTTP(w, r)
}

// opCounts summarises the requests seen, for diagnostics.
func (p *blobProxy) opCounts() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := map[string]int{}
	for _, op := range p.ops {
		n[op]++
	}
	var out []string
	for op, c := range n {
		out = append(out, fmt.Sprintf("%s×%d", op, c))
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// proc is one run of the handler binary.
type proc struct {
	cmd    *exec.Cmd
	stdout testutil.SyncBuffer
	stderr testutil.SyncBuffer
	done   chan struct{}
	code   int
}

// startHandler starts the handler binary with args and exactly the environment env (plus
// PATH, HOME and TMPDIR).
func startHandler(t *testing.T, bin string, env, args []string) *proc {
	t.Helper()
	p := &proc{done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + os.TempDir()}, env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill() })
	return p
}

// kill sends SIGKILL (unless the process has ended) and waits for the exit.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits for the process to end, at most d; it kills it after d and reports false.
func (p *proc) wait(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		p.kill()
		return false
	}
}

// cliSummary is the part of `handler export`'s stdout summary the tests read.
type cliSummary struct {
	Partitions []struct {
		Scope   string `json:"scope"`
		Period  string `json:"billingPeriod"`
		Metric  string `json:"metric"`
		Status  string `json:"status"`
		RunID   string `json:"runId"`
		Resumed bool   `json:"resumed"`
		Error   string `json:"error"`
	} `json:"partitions"`
}

func (p *proc) summary() (*cliSummary, error) {
	var s cliSummary
	if err := json.Unmarshal([]byte(p.stdout.String()), &s); err != nil {
		return nil, fmt.Errorf("export summary: %w", err)
	}
	return &s, nil
}

// tail returns the last n bytes of the process's stderr, for failure messages.
func (p *proc) tail(n int) string {
	s := p.stderr.String()
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return s
}

// liveReader is the concurrent reader of the crash tests. It lists the live partition folders
// and reads every part in a loop, and records a problem when a part does not decode completely,
// when a usage day appears in two parts or outside its part's days, or when the manifest does
// not parse. It records, per folder and day, every row count it saw; the test checks at the end
// that each is the previous export's or the new export's count for that day.
type liveReader struct {
	st       verify.Reader
	dirs     []string
	stop     chan struct{}
	done     chan struct{}
	mu       sync.Mutex
	passes   int
	vanished int
	problems []string
	seen     map[string]map[string]map[int]bool // dir → day → row counts seen
}

// readerPause spaces the reader's passes so it does not starve the exporter of CPU.
const readerPause = 5 * time.Millisecond

func startReader(st verify.Reader, dirs []string) *liveReader {
	rd := &liveReader{st: st, dirs: dirs, stop: make(chan struct{}), done: make(chan struct{}),
		seen: map[string]map[string]map[int]bool{}}
	go func() {
		defer close(rd.done)
		for {
			select {
			case <-rd.stop:
				return
			default:
			}
			rd.pass(context.Background())
			time.Sleep(readerPause)
		}
	}()
	return rd
}

// finish stops the reader after one more complete pass.
func (rd *liveReader) finish() {
	close(rd.stop)
	<-rd.done
	rd.pass(context.Background())
}

func (rd *liveReader) problem(format string, args ...any) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if len(rd.problems) < 20 {
		rd.problems = append(rd.problems, fmt.Sprintf(format, args...))
	}
}

func (rd *liveReader) pass(ctx context.Context) {
	for _, dir := range rd.dirs {
		var names []string
		err := rd.st.List(ctx, dir+"/", func(it store.Item) error {
			base := path.Base(it.Name)
			if strings.HasPrefix(base, "part-") {
				names = append(names, it.Name)
			}
			return nil
		})
		if err != nil {
			rd.problem("listing %s: %v", dir, err)
			continue
		}
		if rc, _, err := rd.st.Get(ctx, dir+"/"+manifest.FileName); err == nil {
			b, rerr := io.ReadAll(rc)
			rc.Close()
			if _, perr := manifest.Parse(b); rerr != nil || perr != nil {
				rd.problem("manifest of %s unreadable: %v %v", dir, rerr, perr)
			}
		} else if !errors.Is(err, store.ErrNotFound) {
			rd.problem("manifest of %s: %v", dir, err)
		}
		owner := map[string]string{} // day → part
		counts := map[string]int{}
		for _, name := range names {
			base := path.Base(name)
			if !strings.HasSuffix(base, ".jsonl.gz") {
				rd.problem("%s: a live part with a foreign name", name)
				continue
			}
			key := strings.TrimSuffix(strings.TrimPrefix(base, "part-"), ".jsonl.gz")
			from, to, ok := strings.Cut(key, "-")
			if !ok {
				rd.problem("%s: part name has no day range", name)
				continue
			}
			lines, err := readPart(ctx, rd.st, name)
			if errors.Is(err, store.ErrNotFound) {
				rd.mu.Lock()
				rd.vanished++ // replaced or removed between the listing and the read
				rd.mu.Unlock()
				continue
			}
			if err != nil {
				rd.problem("partial or corrupt part: %v", err)
				continue
			}
			var f record.Fields
			for i, l := range lines {
				if err := f.Extract(l); err != nil {
					rd.problem("%s line %d: %v", name, i+1, err)
					break
				}
				d, err := record.Day(f.Date)
				if err != nil {
					rd.problem("%s line %d: %v", name, i+1, err)
					break
				}
				day := d.Format("20060102")
				if day < from || day > to {
					rd.problem("%s holds a record of %s, outside its days", name, day)
				}
				if o, ok := owner[day]; ok && o != name {
					rd.problem("usage day %s seen twice: in %s and %s", day, o, name)
				}
				owner[day] = name
				counts[day]++
			}
		}
		rd.mu.Lock()
		if rd.seen[dir] == nil {
			rd.seen[dir] = map[string]map[int]bool{}
		}
		for day, n := range counts {
			if rd.seen[dir][day] == nil {
				rd.seen[dir][day] = map[int]bool{}
			}
			rd.seen[dir][day][n] = true
		}
		rd.mu.Unlock()
	}
	rd.mu.Lock()
	rd.passes++
	rd.mu.Unlock()
}

// dayCounts returns the rows per usage day of the live partition folder dir.
func dayCounts(ctx context.Context, st verify.Reader, dir string) (map[string]int, error) {
	s, err := readPartition(ctx, st, dir+"/"+manifest.FileName)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	var f record.Fields
	for _, l := range s.lines {
		if err := f.Extract(l); err != nil {
			return nil, err
		}
		d, err := record.Day(f.Date)
		if err != nil {
			return nil, err
		}
		out[d.Format("20060102")]++
	}
	return out, nil
}

// check compares every row count the reader saw with the previous and the new export's.
func (rd *liveReader) check(old, new map[string]map[string]int) []string {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	out := append([]string(nil), rd.problems...)
	for dir, days := range rd.seen {
		for day, ns := range days {
			for n := range ns {
				if n != old[dir][day] && n != new[dir][day] {
					out = append(out, fmt.Sprintf("%s day %s: reader saw %d rows; previous export %d, new export %d",
						dir, day, n, old[dir][day], new[dir][day]))
				}
			}
		}
	}
	return out
}
