package main

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usage-export/usage-export/internal/config"
	"github.com/usage-export/usage-export/internal/sandbox"
	"github.com/usage-export/usage-export/internal/sandbox/sandboxtest"
)

// firstErrorWriter records when the first error-level log line was written, and the line.
type firstErrorWriter struct {
	mu    sync.Mutex
	buf   strings.Builder
	start time.Time
	at    time.Duration
	line  string
}

func (w *firstErrorWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if w.line == "" {
		sc := bufio.NewScanner(strings.NewReader(string(p)))
		for sc.Scan() {
			if strings.Contains(sc.Text(), `"level":"error"`) {
				w.at, w.line = time.Since(w.start), sc.Text()
				break
			}
		}
	}
	return len(p), nil
}

// failFastLimit is how soon a permanent cause must reach the log at the default level.
const failFastLimit = 5 * time.Second

// TestFailFast measures the time from the start of an export to its first error line for an
// endpoint that refuses connections, one whose certificate is not trusted (the sandbox with --tls
// but no CA file) and one that refuses the token. Each must come within failFastLimit, at the
// default log level, naming the cause and what to check, and the exit code stays 1.
func TestFailFast(t *testing.T) {
	plain := sandboxtest.Start(t, &sandbox.Options{RecordsPerDay: 1})
	tlsSB := sandboxtest.Start(t, &sandbox.Options{RecordsPerDay: 1, TLS: true})
	sc := plain.Scopes()[0].String()

	token := func(v string) string {
		p := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, endpoint, token, cause, check string
	}{
		{"refused", "http://127.0.0.1:1", plain.Token(), "connection_refused", "USAGE_EXPORT_MANAGEMENT_ENDPOINT"},
		{"untrusted", tlsSB.URL(), tlsSB.Token(), "tls_trust", "USAGE_EXPORT_CA_FILE"},
		{"unauthorised", plain.URL(), "not-the-token", "unauthorized", "USAGE_EXPORT_TOKEN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &firstErrorWriter{start: time.Now()}
			code, _, _ := runCLIWriters(t, nil, io.Discard, w, "export", "--endpoint", tc.endpoint, "--token-file", token(tc.token),
				"--scopes", sc, "--output-dir", t.TempDir(), "--periods", "202601,202602", "--progress", "none")
			total := time.Since(w.start)
			t.Logf("%s: first error line after %v, exit %d after %v", tc.name, w.at.Round(time.Millisecond), code, total.Round(time.Millisecond))
			if w.line == "" {
				t.Fatalf("no error line; log:\n%s", w.buf.String())
			}
			if w.at > failFastLimit {
				t.Errorf("first error line after %v, want within %v", w.at, failFastLimit)
			}
			// The second partition waits for the scope's budget (2 calls a minute for an
			// enrollment account) unless the first failure stops the run's other calls.
			if total > failFastLimit {
				t.Errorf("the run ended after %v, want within %v: the other partition's call was not stopped", total, failFastLimit)
			}
			if !strings.Contains(w.line, `"cause":"`+tc.cause+`"`) || !strings.Contains(w.line, tc.check) {
				t.Errorf("first error line %s: want cause %s and a check naming %s", w.line, tc.cause, tc.check)
			}
			if code != exitFailed {
				t.Errorf("exit code %d, want %d", code, exitFailed)
			}
			if strings.Contains(w.buf.String(), tc.token) && tc.token != "" {
				t.Error("the log holds the token")
			}
		})
	}
}

// runCLIWriters is runCLI with the caller's writers.
func runCLIWriters(t *testing.T, env map[string]string, stdout, stderr io.Writer, args ...string) (int, string, string) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, config.Prefix) {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	return run(args, stdout, stderr), "", ""
}
