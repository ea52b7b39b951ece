package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// logSecrets are values that must never reach a log line.
var logSecrets = []string{"abc123", "s3cr3t", "k3yk3y", "sess10n", "eyJhbGciOi.payload.sig"}

// TestLoggerRedacts: every logger the handler makes (JSON for the host, console for a terminal)
// writes through the redacting writer, so a secret reaches no log line whatever path it takes: a
// field of the logger's context, an error, a message, a string list, an object, the logger of a
// request's context.
func TestLoggerRedacts(t *testing.T) {
	for _, console := range []bool{false, true} {
		t.Run(fmt.Sprintf("console=%v", console), func(t *testing.T) {
			var buf bytes.Buffer
			log := newLoggerTo(&buf, console, "debug").With().Str("link", "https://h/x?$skiptoken=abc123").Logger()
			err := fmt.Errorf("page 2: %w", errors.New(`Get "https://management.azure.com/x?sessiontoken=sess10n&api-version=1": EOF`))
			log.Error().Err(err).Msg("listing failed")
			log.Info().Msg("uploading to https://acct.blob.core.windows.net/c/b?sv=2024&sig=s3cr3t")
			log.Warn().Strs("settings", []string{"AccountName=a;AccountKey=k3yk3y==;EndpointSuffix=core.windows.net"}).Msg("")
			log.Debug().Interface("request", map[string]string{"Authorization": "Bearer eyJhbGciOi.payload.sig"}).Msg("")
			ctx := log.WithContext(context.Background())
			zerolog.Ctx(ctx).Info().Str("error", "GET https://h/x?sig=s3cr3t: 403").Msg("from a request's context")
			out := buf.String()
			if n := strings.Count(strings.TrimSpace(out), "\n") + 1; n != 5 {
				t.Fatalf("%d log lines, want 5:\n%s", n, out)
			}
			for _, s := range logSecrets {
				if strings.Contains(out, s) {
					t.Errorf("secret %q reached the log:\n%s", s, out)
				}
			}
			if !strings.Contains(out, "REDACTED") || !strings.Contains(out, "AccountKey=***") {
				t.Errorf("redaction marks missing:\n%s", out)
			}
		})
	}
}

// TestReportsRedacted: the CLI's JSON reports (here verify's, whose problems quote the
// partition asked for) go through one writer, which removes secrets.
func TestReportsRedacted(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"verify", "--output-dir", t.TempDir(), "usage/x?sv=1&sig=s3cr3t"}, &stdout, &stderr)
	if code == exitOK || !strings.Contains(stdout.String(), "sig=***") || strings.Contains(stdout.String()+stderr.String(), "s3cr3t") {
		t.Errorf("exit %d, report (want the signature redacted):\n%s\nstderr: %s", code, stdout.String(), stderr.String())
	}
}

// TestRunPrintsRedactedErrors: the CLI's one error printer (an exit error's message or any
// other error) removes secrets from what it prints.
func TestRunPrintsRedactedErrors(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"publish", "--output-dir", dir, "https://h/x?sv=1&sig=s3cr3t"}, // exit error: no held run with this id
		{"status", "--output-dir", dir + "/none?sv=1&sig=s3cr3t"},       // error: no such output directory
	} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code == exitOK {
			t.Fatalf("%v: exit 0", args)
		}
		out := stdout.String() + stderr.String()
		if strings.Contains(out, "s3cr3t") || !strings.Contains(stderr.String(), "sig=***") {
			t.Errorf("%v printed (want the signature redacted):\n%s", args, out)
		}
	}
}
