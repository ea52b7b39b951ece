package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/usage-export/usage-export/internal/config"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/partplan"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/plan"
	"github.com/usage-export/usage-export/internal/sandbox"
	"github.com/usage-export/usage-export/internal/sandbox/sandboxtest"
	"github.com/usage-export/usage-export/internal/scope"
	"github.com/usage-export/usage-export/internal/status"
)

// TestStatusHeldPublish exports two scopes × two periods, re-exports one scope from a sandbox
// with a quarter of the records (the drop guard holds it), and checks `status` (filters, JSON,
// table), then publishes one held run and discards the other from the CLI.
func TestStatusHeldPublish(t *testing.T) {
	full := sandboxtest.Start(t, &sandbox.Options{RecordsPerDay: 4})
	thin := sandboxtest.Start(t, &sandbox.Options{RecordsPerDay: 1, Token: full.Token()})
	var scopes []string
	for _, s := range full.Scopes() {
		if s.Kind == scope.EnrollmentAccount && len(scopes) < 2 {
			scopes = append(scopes, s.String())
		}
	}
	now := period.Of(time.Now())
	p1, p2 := now.Add(-3).String(), now.Add(-2).String() // final periods: the drop guard applies
	dir := t.TempDir()
	// usageDetails throughout: the plan's call counts below are those of listings (the auto
	// choice is internal/source's, held by its TestChoose).
	env := map[string]string{config.EnvToken: full.Token(), config.EnvOutputDir: dir, config.EnvRatePerScope: "100000",
		config.EnvSource: "usageDetails"}
	exportFrom := func(sb *sandbox.Server, scopes string) int {
		code, _, stderr := runCLI(t, env, "export", "--endpoint", sb.URL(), "--scopes", scopes,
			"--periods", p1+","+p2, "--progress", "none", "--part-days", "31")
		if code != exitOK && code != exitAttended {
			t.Fatalf("export: exit %d: %s", code, stderr)
		}
		return code
	}
	exportFrom(full, strings.Join(scopes, ","))
	if code := exportFrom(thin, scopes[0]); code != exitAttended {
		t.Fatalf("re-export with a quarter of the rows: exit %d, want %d (held)", code, exitAttended)
	}

	statusOf := func(args ...string) status.Report {
		t.Helper()
		code, stdout, stderr := runCLI(t, env, append([]string{"status", "--format", "json"}, args...)...)
		if code != exitOK {
			t.Fatalf("status: exit %d: %s", code, stderr)
		}
		var rep status.Report
		if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
			t.Fatalf("status JSON: %v\n%s", err, stdout)
		}
		return rep
	}
	all := statusOf()
	if all.Count != 4 || all.Held != 2 {
		t.Fatalf("status: %d partitions, %d held; want 4 and 2\n%+v", all.Count, all.Held, all)
	}
	one := statusOf("--scope", scopes[0], "--periods", p1)
	if one.Count != 1 || len(one.Partitions[0].Held) != 1 || one.Partitions[0].Scope != scopes[0] || one.Partitions[0].BillingPeriod != p1 {
		t.Fatalf("filtered status: %+v", one)
	}
	ps := one.Partitions[0]
	if !ps.Committed || ps.Rows == 0 || ps.Source != "usageDetails" || ps.LastRun == nil || len(ps.Totals) == 0 || ps.PeriodStatus != "final" {
		t.Errorf("partition status %+v", ps)
	}
	if h := ps.Held[0]; h.Rows == 0 || h.Rows*2 > ps.Rows {
		t.Errorf("held run has %d rows, live %d: want about a quarter", h.Rows, ps.Rows)
	}
	code, table, _ := runCLI(t, env, "status", "--format", "table", "--scope", scopes[0])
	if code != exitOK || !strings.Contains(table, "SCOPE") || !strings.Contains(table, "held "+ps.Held[0].RunID) {
		t.Errorf("table:\n%s", table)
	}

	// plan reads what is committed and calls no API: the endpoint refuses connections.
	code, stdout, stderr := runCLI(t, env, "plan", "--endpoint", "http://127.0.0.1:1", "--scopes", strings.Join(scopes, ","),
		"--periods", p1+","+p2+","+now.Add(-4).String(), "--format", "json")
	if code != exitOK {
		t.Fatalf("plan: exit %d: %s", code, stderr)
	}
	var pl plan.Plan
	if err := json.Unmarshal([]byte(stdout), &pl); err != nil {
		t.Fatal(err)
	}
	replace, held, unknown := 0, 0, 0
	for _, p := range pl.Partitions {
		if p.Action == "replace" && p.Calls.Known && p.Calls.Calls == int(p.Committed.Rows+999)/1000+1 {
			replace++
		}
		held += p.HeldRuns
		if !p.Calls.Known && strings.HasPrefix(p.Calls.Basis, "unknown") {
			unknown++
		}
	}
	if len(pl.Partitions) != 6 || replace != 4 || held != 2 || unknown != 2 || pl.Minutes <= 0 {
		t.Errorf("plan: %d partitions, %d replace with known calls, %d held, %d unknown, %.1f min; want 6, 4, 2, 2, > 0\n%s",
			len(pl.Partitions), replace, held, unknown, pl.Minutes, stdout)
	}
	if strings.Contains(stderr, "management API call failed") {
		t.Errorf("plan called the API: %s", stderr)
	}

	if code, _, stderr := runCLI(t, env, "publish", "no-such-run"); code != exitUsage || !strings.Contains(stderr, "no held run") {
		t.Errorf("publish of an unknown run: exit %d %s", code, stderr)
	}
	if code, _, stderr := runCLI(t, env, "publish", ps.Held[0].RunID); code != exitOK {
		t.Fatalf("publish: exit %d: %s", code, stderr)
	}
	after := statusOf("--scope", scopes[0], "--periods", p1).Partitions[0]
	if after.LastRun.RunID != ps.Held[0].RunID || after.Rows != ps.Held[0].Rows || len(after.Held) != 0 {
		t.Errorf("after publish: %+v", after)
	}
	other := statusOf("--scope", scopes[0], "--periods", p2).Partitions[0]
	if code, _, stderr := runCLI(t, env, "discard", other.Held[0].RunID); code != exitOK {
		t.Fatalf("discard: exit %d: %s", code, stderr)
	}
	if again := statusOf(); again.Held != 0 || again.Count != 4 {
		t.Errorf("after discard: %d held, %d partitions", again.Held, again.Count)
	}
	if code, _, stderr := runCLI(t, env, "verify"); code != exitOK {
		t.Errorf("verify after publish and discard: exit %d: %s", code, stderr)
	}

	// The inventory the partitions API and dry runs use, over the same output.
	cfg, err := config.Load(config.Lookup(map[string]string{config.EnvOutputDir: dir, config.EnvScopes: strings.Join(scopes, ",")}, func(string) (string, bool) { return "", false }), true, true)
	if err != nil {
		t.Fatal(err)
	}
	st, err := openReadStore(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	inv := newInventory(cfg, st)
	rep, err := inv.Status(context.Background(), status.Filter{})
	if err != nil || rep.Count != 4 || rep.Held != 0 {
		t.Errorf("inventory status: %v %+v", err, rep)
	}
	p1p, _ := period.Parse(p1)
	parts := partplan.Partitions(cfg.Scopes, []period.Period{p1p}, cfg.Metrics)
	ipl, err := inv.Plan(context.Background(), parts, manifest.SourceUsageDetails)
	if err != nil || len(ipl.Partitions) != 2 || ipl.Unknown != 0 || ipl.Partitions[0].Action != "replace" {
		t.Errorf("inventory plan: %v %+v", err, ipl)
	}
	if removed, err := inv.Clean(context.Background()); err != nil || len(removed) != 0 {
		t.Errorf("inventory clean: %v %v", removed, err)
	}
}
