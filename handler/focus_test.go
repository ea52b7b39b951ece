package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/usage-export/usage-export/docs/schemas"
	"github.com/usage-export/usage-export/internal/config"
	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/sandbox"
	"github.com/usage-export/usage-export/internal/verify"
)

// TestExportFocus: `handler export --focus true` exports both cost views, builds the FOCUS
// partition, reports it in the summary, and `handler verify` checks it with the raw ones.
func TestExportFocus(t *testing.T) {
	sb := startSandbox(t, &sandbox.Options{RecordsPerDay: 2})
	dept := "/providers/Microsoft.Billing/departments/301001" // holds subscriptions with commitments
	last := period.Of(time.Now()).Add(-1).String()
	dir := t.TempDir()
	code, stdout, stderr := runCLI(t, map[string]string{config.EnvToken: sb.Token()}, "export",
		"--endpoint", sb.URL(), "--scopes", dept, "--output-dir", dir, "--periods", last,
		"--focus", "true", "--rate-per-scope", "10000", "--progress", "none")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if err := schemas.Validate(schemas.Summary, []byte(stdout)); err != nil {
		t.Errorf("summary: %v\n%s", err, stdout)
	}
	var sum export.Summary
	if err := json.Unmarshal([]byte(stdout), &sum); err != nil {
		t.Fatal(err)
	}
	if len(sum.Partitions) != 2 || len(sum.Derived) != 1 || sum.Derived[0].Status != "committed" || sum.Derived[0].Rows == 0 {
		t.Fatalf("summary: %d partitions, derived %+v", len(sum.Partitions), sum.Derived)
	}
	code, stdout, stderr = runCLI(t, nil, "verify", "--output-dir", dir)
	if code != exitOK {
		t.Fatalf("verify exit %d: %s %s", code, stdout, stderr)
	}
	var out struct{ Partitions []verify.Report }
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("verify output: %v\n%s", err, stdout)
	}
	reps := out.Partitions
	focusSeen := false
	for _, r := range reps {
		if strings.Contains(r.Manifest, "dataset=focus/") {
			focusSeen = r.Rows == sum.Derived[0].Rows && r.OK()
		}
	}
	if len(reps) != 3 || !focusSeen {
		t.Errorf("verify reports %+v", reps)
	}
}
