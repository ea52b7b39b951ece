package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"
)

// Startup is the custom handler's start-up: time from exec to the first answer to the Functions
// host's readiness probe (GET / on FUNCTIONS_CUSTOMHANDLER_PORT).
type Startup struct {
	Runs   []time.Duration
	Median time.Duration
}

// probeInterval is how often the harness probes (the host itself probes every 25 ms or so).
const probeInterval = time.Millisecond

// measureStartup starts `handler serve` runs times with a local output directory and measures
// each start to its first HTTP answer, then stops it with SIGTERM.
func measureStartup(ctx context.Context, handler, workDir string, env []string, runs int) (Startup, error) {
	var st Startup
	for i := range runs {
		d, err := startOnce(ctx, handler, filepath.Join(workDir, "serve-"+strconv.Itoa(i)), env)
		if err != nil {
			return st, fmt.Errorf("bench: start-up run %d: %w", i+1, err)
		}
		st.Runs = append(st.Runs, d)
	}
	sorted := slices.Clone(st.Runs)
	slices.Sort(sorted)
	st.Median = sorted[len(sorted)/2]
	return st, nil
}

func startOnce(ctx context.Context, handler, dir string, env []string) (time.Duration, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.CommandContext(ctx, handler, "serve")
	cmd.Env = childEnv(env,
		"FUNCTIONS_CUSTOMHANDLER_PORT="+strconv.Itoa(port),
		"USAGE_EXPORT_SCOPES="+EAScope.String(),
		"USAGE_EXPORT_OUTPUT_DIR="+dir,
		"USAGE_EXPORT_TOKEN=startup-probe",
		"USAGE_EXPORT_MANAGEMENT_ENDPOINT=http://127.0.0.1:1",
		"USAGE_EXPORT_LOG_LEVEL=warn",
		// serve checks that a queue connection is configured; the probe never uses it.
		"AzureWebJobsStorage=UseDevelopmentStorage=true",
	)
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/"
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		os.RemoveAll(dir)
	}()
	deadline := start.Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			exited <- err
			return 0, fmt.Errorf("handler serve exited before answering: %v", err)
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			return time.Since(start), nil
		}
		time.Sleep(probeInterval)
	}
	return 0, fmt.Errorf("no answer on %s within 30 s", url)
}
