package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

func TestErrorLinesAlsoOnStderr(t *testing.T) {
	var out, errw bytes.Buffer
	log := zerolog.New(errorsToStderr{out: &out, errw: &errw})
	log.Info().Msg("listening")
	log.Warn().Msg("retrying")
	log.Error().Msg("could not enqueue")
	if n := strings.Count(out.String(), "\n"); n != 3 {
		t.Errorf("stdout has %d lines, want all 3", n)
	}
	if got := errw.String(); strings.Count(got, "\n") != 1 || !strings.Contains(got, "could not enqueue") {
		t.Errorf("stderr %q, want the error line only", got)
	}
}

func TestWorkerIdentity(t *testing.T) {
	env := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"Flex Consumption: CONTAINER_NAME", map[string]string{envContainerName: "c-1", envInstanceID: ""}, "c-1"},
		{"CONTAINER_NAME wins", map[string]string{envContainerName: "c-1", envInstanceID: "abc"}, "c-1"},
		{"App Service: WEBSITE_INSTANCE_ID", map[string]string{envInstanceID: "abc"}, "abc"},
	}
	for _, tt := range tests {
		a, b := workerIdentity(env(tt.env)), workerIdentity(env(tt.env))
		if a.Instance != tt.want || b.Instance != tt.want {
			t.Errorf("%s: instance %q, want %q", tt.name, a.Instance, tt.want)
		}
		if a.Process == b.Process || len(a.Process) != 36 {
			t.Errorf("%s: processes %q and %q, want two different UUIDs (one per start)", tt.name, a.Process, b.Process)
		}
	}
	if w := workerIdentity(env(nil)); w.Instance == "" {
		t.Error("no instance name without either setting, want the host name")
	}
}
