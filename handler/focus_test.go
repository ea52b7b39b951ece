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
	"github.com/usage-export/usage-export/internal/sandbox/sandboxtest"
	"github.com/usage-export/usage-export/internal/verify"
)

// TestExportFocus: `handler export --focus true` exports both cost views, builds the FOCUS
// partition, reports it in the summary, and `handler verify` checks it with the raw ones.
func TestExportFocus(t *testing.T) {
	sb := sandboxtest.Start(t, &sandbox.Options{RecordsPerDay: 2})
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

// TestPublishHeldRebuildsFocus: a held re-export published with `handler publish` re-commits an
// input outside a run, and the FOCUS partition is rebuilt from it.
func TestPublishHeldRebuildsFocus(t *testing.T) {
	full := sandboxtest.Start(t, &sandbox.Options{RecordsPerDay: 4})
	thin := sandboxtest.Start(t, &sandbox.Options{RecordsPerDay: 1, Token: full.Token()})
	acct := "/providers/Microsoft.Billing/enrollmentAccounts/4210001" // holds a subscription with commitments
	p := period.Of(time.Now()).Add(-3).String()                       // final: the drop guard applies
	dir := t.TempDir()
	env := map[string]string{config.EnvToken: full.Token(), config.EnvOutputDir: dir, config.EnvRatePerScope: "100000",
		config.EnvFocus: "true", config.EnvSource: "usageDetails"}
	exportFrom := func(sb *sandbox.Server) export.Summary {
		code, stdout, stderr := runCLI(t, env, "export", "--endpoint", sb.URL(), "--scopes", acct, "--periods", p, "--progress", "none")
		if code != exitOK && code != exitAttended {
			t.Fatalf("export: exit %d: %s", code, stderr)
		}
		var sum export.Summary
		if err := json.Unmarshal([]byte(stdout), &sum); err != nil {
			t.Fatal(err)
		}
		return sum
	}
	first := exportFrom(full)
	if len(first.Derived) != 1 || first.Derived[0].Status != "committed" {
		t.Fatalf("first export: derived %+v", first.Derived)
	}
	second := exportFrom(thin)
	held := map[string]string{}
	for _, r := range second.Partitions {
		if r.Status == export.StatusHeld {
			held[string(r.Metric)] = r.RunID
		}
	}
	if len(held) != 2 || len(second.Derived) != 0 {
		t.Fatalf("thin re-export: partitions %+v derived %+v; want both metrics held and no FOCUS build", second.Partitions, second.Derived)
	}
	publish := func(metric string) string {
		code, stdout, stderr := runCLI(t, env, "publish", held[metric])
		if code != exitOK {
			t.Fatalf("publish: exit %d: %s", code, stderr)
		}
		var out struct {
			Focus struct{ Status, RunID string }
		}
		if err := json.Unmarshal([]byte(stdout), &out); err != nil || out.Focus.Status != "committed" || out.Focus.RunID == first.Derived[0].RunID {
			t.Fatalf("publish %s: output %s (%v): want the FOCUS partition rebuilt", metric, stdout, err)
		}
		_, stdout, _ = runCLI(t, env, "verify")
		return stdout
	}
	// The thin actual cost beside the full amortized cost: the rebuilt partition says, and
	// verify reports, that BilledCost no longer matches (the two inputs disagree).
	if out := publish("actualcost"); !strings.Contains(out, "BilledCost = actualcost cost") {
		t.Errorf("verify after publishing only the actual cost: %s", out)
	}
	if out := publish("amortizedcost"); strings.Contains(out, `"ok": false`) {
		t.Errorf("verify after publishing both: %s", out)
	}
}
