package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"time"
)

// Usage is what one child process cost: the measurement of every scenario.
type Usage struct {
	Wall   time.Duration // from just before exec to exit
	CPU    time.Duration // user + system CPU of the child (and its waited-for children), from its rusage
	MaxRSS int64         // peak resident set size in bytes of the program (see peakRSS)
}

// CPUSeconds returns CPU in seconds.
func (u Usage) CPUSeconds() float64 { return u.CPU.Seconds() }

// MaxRSSMiB returns the peak RSS in MiB.
func (u Usage) MaxRSSMiB() float64 { return float64(u.MaxRSS) / (1 << 20) }

// childResult is a finished child: its usage, standard output and standard error.
type childResult struct {
	Usage
	Stdout, Stderr []byte
}

// runChild runs cmd to completion and measures it. Stdout and stderr are captured unless the
// caller set them. A non-zero exit is an error that quotes the end of stderr.
func runChild(ctx context.Context, cmd *exec.Cmd) (childResult, error) {
	var stdout, stderr bytes.Buffer
	if cmd.Stdout == nil {
		cmd.Stdout = &stdout
	}
	if cmd.Stderr == nil {
		cmd.Stderr = &stderr
	}
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Start()
	if err != nil {
		return childResult{}, fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	peak := watchPeakRSS(cmd.Process.Pid)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-done
		return childResult{}, fmt.Errorf("running %s: %w", cmd.Path, ctx.Err())
	}
	res := childResult{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	res.Wall = time.Since(start)
	if cmd.ProcessState != nil {
		res.Usage.CPU, res.Usage.MaxRSS = rusage(cmd.ProcessState.SysUsage())
	}
	if hwm := peak(); hwm > 0 {
		res.Usage.MaxRSS = hwm
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return res, fmt.Errorf("%s exited with %d: %s", cmd.Args[0], ee.ExitCode(), tail(res.Stderr, 2000))
		}
		return res, fmt.Errorf("running %s: %w", cmd.Path, err)
	}
	return res, nil
}

// tail returns at most the last n bytes of b, as text.
func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(bytes.TrimSpace(b))
}
