// Package azurite starts and stops the Azurite storage emulator pinned in the module's
// package.json, for tests, the demo and benchmarks.
package azurite

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// AccountName and AccountKey are Azurite's well-known, public development account.
	AccountName = "devstoreaccount1"
	AccountKey  = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

	// host is the only address the emulator listens on.
	host = "127.0.0.1"
	// binPath is the emulator's launcher, relative to the module root.
	// It serves Blob, Queue and Table; Table gets a free port nobody uses.
	binPath = "node_modules/.bin/azurite"
	// startTimeout bounds the wait for the port to answer; Node takes seconds to load Azurite,
	// and much longer on a loaded 2-core machine.
	startTimeout = 60 * time.Second
	// stopTimeout is how long Stop waits after SIGTERM before SIGKILL.
	stopTimeout = 10 * time.Second
	// pollInterval is the pause between readiness probes.
	pollInterval = 50 * time.Millisecond
	// startTries is how many free ports Start tries when Port is 0 and the one picked is
	// taken before Azurite binds it.
	startTries = 3
	// waitDelay bounds the wait for output pipes after exit (a stray grandchild holding them).
	waitDelay = 2 * time.Second
	// logTail is how many output lines are kept for error messages.
	logTail = 20
)

// Options configure Start; nil means all defaults.
type Options struct {
	// Dir is the data directory; empty means a new temporary directory removed by Stop.
	Dir string
	// Port is the blob port; 0 picks a free one.
	Port int
	// QueuePort is the queue port; 0 picks a free one.
	QueuePort int
	// Logf receives Azurite's output lines and lifecycle messages; nil discards them.
	Logf func(format string, args ...any)
	// Root is the module root holding node_modules; empty means the nearest directory with a
	// go.mod, walking up from the working directory.
	Root string
}

// Server is a running (or attached) Azurite: its Blob and Queue services.
type Server struct {
	port    int
	qport   int
	tport   int
	dir     string
	tempDir bool
	bin     string
	logf    func(string, ...any)
	owned   bool

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	tail *tail
}

// ErrNotOwned is returned by Stop, Kill and Restart on a server this process did not start.
var ErrNotOwned = errors.New("azurite: server was not started by this process")

// Start runs Azurite and waits until its blob and queue ports answer (at most 60 s, or ctx).
func Start(ctx context.Context, o *Options) (*Server, error) {
	if o == nil {
		o = &Options{}
	}
	root := o.Root
	if root == "" {
		var err error
		if root, err = moduleRoot(); err != nil {
			return nil, fmt.Errorf("starting azurite: %w", err)
		}
	}
	bin := filepath.Join(root, filepath.FromSlash(binPath))
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("starting azurite: %s not found (run npm ci in %s): %w", binPath, root, err)
	}
	s := &Server{bin: bin, logf: o.Logf, owned: true, dir: o.Dir}
	if s.logf == nil {
		s.logf = func(string, ...any) {}
	}
	if s.dir == "" {
		d, err := os.MkdirTemp("", "azurite-")
		if err != nil {
			return nil, fmt.Errorf("starting azurite: %w", err)
		}
		s.dir, s.tempDir = d, true
	} else if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, fmt.Errorf("starting azurite: %w", err)
	}
	var err error
	for try := 0; try < startTries; try++ {
		s.port, s.qport = o.Port, o.QueuePort
		if s.port == 0 {
			if s.port, err = freePort(); err != nil {
				break
			}
		}
		if s.qport == 0 {
			if s.qport, err = freePort(); err != nil {
				break
			}
		}
		if s.tport, err = freePort(); err != nil {
			break
		}
		if err = s.start(ctx); err == nil {
			return s, nil
		}
		if (o.Port != 0 && o.QueuePort != 0) || ctx.Err() != nil {
			break
		}
	}
	if s.tempDir {
		os.RemoveAll(s.dir)
	}
	return nil, err
}

// Attach describes an Azurite that something else runs, from its connection string
// (BlobEndpoint must be an http://127.0.0.1 or localhost URL; QueueEndpoint, when present, too).
// Stop, Kill and Restart on it return ErrNotOwned.
func Attach(connectionString string) (*Server, error) {
	var blob, queue string
	for _, part := range strings.Split(connectionString, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch {
		case strings.EqualFold(k, "BlobEndpoint"):
			blob = v
		case strings.EqualFold(k, "QueueEndpoint"):
			queue = v
		}
	}
	if blob == "" {
		return nil, errors.New("attaching azurite: connection string has no usable BlobEndpoint")
	}
	port, err := loopbackPort("BlobEndpoint", blob)
	if err != nil {
		return nil, err
	}
	s := &Server{port: port, logf: func(string, ...any) {}}
	if queue != "" {
		if s.qport, err = loopbackPort("QueueEndpoint", queue); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// loopbackPort returns the port of an http://127.0.0.1:<port> or localhost URL.
func loopbackPort(name, endpoint string) (int, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return 0, fmt.Errorf("attaching azurite: connection string has no usable %s", name)
	}
	h, p, err := net.SplitHostPort(u.Host)
	if err != nil || (h != host && h != "localhost") {
		return 0, fmt.Errorf("attaching azurite: %s is not 127.0.0.1:<port> or localhost:<port>", name)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return 0, fmt.Errorf("attaching azurite: %s port: %w", name, err)
	}
	return port, nil
}

// Port returns the blob port.
func (s *Server) Port() int { return s.port }

// QueuePort returns the queue port (0 for an attached server whose connection string named no
// QueueEndpoint).
func (s *Server) QueuePort() int { return s.qport }

// QueueEndpoint returns http://127.0.0.1:<queue port>/devstoreaccount1, or "" when the server
// has no queue service.
func (s *Server) QueueEndpoint() string {
	if s.qport == 0 {
		return ""
	}
	return fmt.Sprintf("http://%s:%d/%s", host, s.qport, AccountName)
}

// Dir returns the data directory ("" for an attached server).
func (s *Server) Dir() string { return s.dir }

// BlobEndpoint returns http://127.0.0.1:<port>/devstoreaccount1.
func (s *Server) BlobEndpoint() string {
	return fmt.Sprintf("http://%s:%d/%s", host, s.port, AccountName)
}

// ConnectionString returns the development account's connection string for this server, with
// its BlobEndpoint and (when it has one) QueueEndpoint.
func (s *Server) ConnectionString() string {
	cs := "DefaultEndpointsProtocol=http;AccountName=" + AccountName + ";AccountKey=" + AccountKey +
		";BlobEndpoint=" + s.BlobEndpoint() + ";"
	if q := s.QueueEndpoint(); q != "" {
		cs += "QueueEndpoint=" + q + ";"
	}
	return cs
}

// Stop ends Azurite with SIGTERM (it persists its metadata on the way out), then SIGKILL
// after 10 s, waits for it, and removes a temporary data directory. Stopping a stopped server
// only removes the directory.
func (s *Server) Stop() error {
	if !s.owned {
		return ErrNotOwned
	}
	err := s.signal(syscall.SIGTERM, stopTimeout)
	if s.tempDir {
		if rerr := os.RemoveAll(s.dir); err == nil && rerr != nil {
			err = fmt.Errorf("stopping azurite: %w", rerr)
		}
	}
	return err
}

// Kill ends Azurite abruptly with SIGKILL and waits for it; the data directory stays for
// Restart. Like a power cut, it loses what Azurite had not yet saved: Azurite writes blob
// content at once but saves its metadata database every 5 s.
func (s *Server) Kill() error {
	if !s.owned {
		return ErrNotOwned
	}
	return s.signal(syscall.SIGKILL, 0)
}

// Restart stops Azurite (SIGTERM, if it is running) and starts it again on the same port
// with the same data directory.
func (s *Server) Restart(ctx context.Context) error {
	if !s.owned {
		return ErrNotOwned
	}
	if err := s.signal(syscall.SIGTERM, stopTimeout); err != nil {
		return err
	}
	return s.start(ctx)
}

// signal sends sig and waits for the exit; after grace (if > 0) it sends SIGKILL.
func (s *Server) signal(sig syscall.Signal, grace time.Duration) error {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	default:
	}
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stopping azurite: %w", err)
	}
	if grace > 0 {
		timer := time.NewTimer(grace)
		defer timer.Stop()
		select {
		case <-done:
			return nil
		case <-timer.C:
			s.logf("azurite: no exit %v after %v, killing", grace, sig)
			if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
				return fmt.Errorf("stopping azurite: %w", err)
			}
		}
	}
	<-done
	return nil
}

// start launches the process on s.port and s.qport and waits until both accept connections.
func (s *Server) start(ctx context.Context) error {
	cmd := exec.Command(s.bin,
		"--blobHost", host,
		"--blobPort", strconv.Itoa(s.port),
		"--queueHost", host,
		"--queuePort", strconv.Itoa(s.qport),
		"--tableHost", host,
		"--tablePort", strconv.Itoa(s.tport),
		"--location", s.dir,
		"--silent",
		"--skipApiVersionCheck",
		"--loose",
		"--disableTelemetry",
	)
	cmd.Dir = s.dir
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = waitDelay
	t := &tail{}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		pw.Close()
		return fmt.Errorf("starting azurite: %w", err)
	}
	done := make(chan struct{})
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			t.add(sc.Text())
			s.logf("azurite: %s", sc.Text())
		}
		_, _ = io.Copy(io.Discard, pr) // keep draining after a too-long line
	}()
	go func() {
		err := cmd.Wait()
		pw.Close()
		<-scanned // no logging after done is closed
		s.logf("azurite: exited: %v", err)
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.done, s.tail = cmd, done, t
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	addr := net.JoinHostPort(host, strconv.Itoa(s.port))
	qaddr := net.JoinHostPort(host, strconv.Itoa(s.qport))
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			if c, err = d.DialContext(ctx, "tcp", qaddr); err == nil {
				c.Close()
				s.logf("azurite: blob on %s, queue on %s, data in %s", addr, qaddr, s.dir)
				return nil
			}
		}
		timer := time.NewTimer(pollInterval)
		select {
		case <-done:
			timer.Stop()
			return fmt.Errorf("starting azurite on %s: exited early: %s", addr, t.String())
		case <-ctx.Done():
			timer.Stop()
			_ = s.signal(syscall.SIGKILL, 0) // the error below says what went wrong
			return fmt.Errorf("starting azurite on %s: port did not answer: %w (output: %s)", addr, ctx.Err(), t.String())
		case <-timer.C:
		}
	}
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// moduleRoot walks up from the working directory to the nearest go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// tail keeps the last lines of output.
type tail struct {
	mu    sync.Mutex
	lines []string
}

func (t *tail) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, line)
	if len(t.lines) > logTail {
		t.lines = t.lines[len(t.lines)-logTail:]
	}
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == 0 {
		return "(no output)"
	}
	return strings.Join(t.lines, " | ")
}
