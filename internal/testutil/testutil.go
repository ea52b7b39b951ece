// Package testutil holds the few helpers that the test suites playing the Functions host (the
// handler's end-to-end tests, the functions tests and the fault suites) share: a process output
// buffer, a free loopback port, the handler binary built once per test binary, and the reading of
// an invocation's HTTP output.
package testutil

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// SyncBuffer is a bytes.Buffer that a child process can write to while the test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// FreePort asks the kernel for a free loopback port.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// HandlerBinary builds the handler command once per test binary (the go build cache makes it
// cheap after the first time) and returns its path. It skips t under go test -short: a test of
// the built binary is the end-to-end layer, and -short runs the unit and table layers only.
func HandlerBinary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs the built handler binary (end-to-end layer): skipped under -short")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "usage-export-handler-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "handler")
		out, err := exec.Command("go", "build", "-o", buildPath, "github.com/usage-export/usage-export/handler").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build handler: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// RemoveHandlerBinary deletes the binary HandlerBinary built, if any; call it from TestMain
// after the tests ran.
func RemoveHandlerBinary() {
	if buildPath != "" {
		_ = os.RemoveAll(filepath.Dir(buildPath))
	}
}

// HTTPOutput is the http output binding of an invocation response, what the host turns into the
// caller's HTTP response.
type HTTPOutput struct {
	StatusCode int    `json:"statusCode"`
	Body       string `json:"body"`
}

// ParseHTTPOutput returns the http output binding (Outputs.res) of a custom handler's invocation
// response: {"Outputs":{"res":{"statusCode":…,"body":"…"}},…}.
func ParseHTTPOutput(b []byte) (HTTPOutput, error) {
	var r struct {
		Outputs struct {
			Res HTTPOutput `json:"res"`
		} `json:"Outputs"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return HTTPOutput{}, fmt.Errorf("invocation response: %w", err)
	}
	return r.Outputs.Res, nil
}

// Golden compares got with the golden file at path, naming the first line that differs, or
// rewrites the file when update is set (each package's -update flag).
func Golden(t *testing.T, path string, got []byte, update bool) {
	t.Helper()
	if update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output (if the change is meant, rerun with -update and review the diff):\n%s", path, firstDiff(want, got))
	}
}

// firstDiff describes the first line where want and got differ.
func firstDiff(want, got []byte) string {
	wl, gl := bytes.Split(want, []byte("\n")), bytes.Split(got, []byte("\n"))
	for i := 0; i < max(len(wl), len(gl)); i++ {
		var w, g []byte
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if !bytes.Equal(w, g) {
			return fmt.Sprintf("line %d:\nwant %s\n got %s", i+1, w, g)
		}
	}
	return "(same lines; different line endings)"
}
