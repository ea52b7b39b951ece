package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/usage-export/usage-export/docs/schemas"
	"github.com/usage-export/usage-export/internal/azurite/azuritetest"
	"github.com/usage-export/usage-export/internal/config"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/metric"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/sandbox"
	"github.com/usage-export/usage-export/internal/sandbox/sandboxtest"
	"github.com/usage-export/usage-export/internal/scope"
)

// runCLI runs the command line in-process with the given USAGE_EXPORT_* environment (every other
// setting is cleared) and returns the exit code, stdout and stderr.
func runCLI(t *testing.T, env map[string]string, args ...string) (int, string, string) {
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
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// TestHelp: -h and --help print the help on stdout and exit 0, bare and on every command.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{
		{"--help"}, {"-h"}, {"help"}, {"serve", "--help"}, {"serve", "-h"},
		{"export", "-h"}, {"export", "--help"}, {"verify", "-h"}, {"sandbox", "--help"}, {"demo", "-h"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, stdout, stderr := runCLI(t, nil, args...)
			if code != exitOK || !strings.HasPrefix(stdout, "usage: handler") || stderr != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want 0 and the help on stdout", code, firstLine(stdout), stderr)
			}
		})
	}
}

// TestVerifyFlags: verify's help lists only the flags of reading the output.
func TestVerifyFlags(t *testing.T) {
	_, stdout, _ := runCLI(t, nil, "verify", "-h")
	for _, export := range []string{"-scopes", "-api-version", "-rate-per-scope", "-drop-guard", "-endpoint", "-part-days"} {
		if strings.Contains(stdout, export+" ") {
			t.Errorf("verify's help lists %s:\n%s", export, stdout)
		}
	}
	if !strings.Contains(stdout, "-output-dir") || !strings.Contains(stdout, "-container") {
		t.Errorf("verify's help lacks its own flags:\n%s", stdout)
	}
}

// TestFlagWinsOverEnvironment: --output-dir wins over a connection string in the environment
// (before, both were set and the command stopped with "set only one").
func TestFlagWinsOverEnvironment(t *testing.T) {
	dir := t.TempDir()
	code, _, stderr := runCLI(t, map[string]string{config.EnvStorageConnection: "UseDevelopmentStorage=true"},
		"verify", "--output-dir", dir)
	if code != exitFailed || !strings.Contains(stderr, "no manifest found") {
		t.Errorf("exit %d, stderr %q; want verify to read the empty directory and find no manifest", code, stderr)
	}
}

// TestUnknownSetting: a misspelt setting name stops the command with a "did you mean".
func TestUnknownSetting(t *testing.T) {
	code, _, stderr := runCLI(t, map[string]string{"USAGE_EXPORT_METRICS": "amortizedcost"},
		"export", "--scopes", "/subscriptions/a", "--output-dir", t.TempDir())
	if code != exitUsage || !strings.Contains(stderr, "USAGE_EXPORT_METRICS: is not a setting of Usage Export; did you mean USAGE_EXPORT_METRIC?") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = runCLI(t, nil, "export", "--scopes", "/subscriptions/a", "--output-dir", t.TempDir(), "--endpoint", "https://attacker.example.net")
	if code != exitUsage || !strings.Contains(stderr, config.EnvAllowCustomEndpoint) {
		t.Errorf("custom endpoint: exit %d, stderr %q", code, stderr)
	}
}

// TestVerifyCreatesNothing: verify of a missing directory or container fails and leaves them
// missing.
func TestVerifyCreatesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	code, _, stderr := runCLI(t, nil, "verify", "--output-dir", dir)
	if code == exitOK || !strings.Contains(stderr, "does not exist") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("verify created %s (stat: %v)", dir, err)
	}

	az := azuritetest.Start(t)
	code, _, stderr = runCLI(t, nil, "verify", "--storage-connection", az.ConnectionString(), "--container", "never-created")
	if code == exitOK || !strings.Contains(stderr, "does not exist") {
		t.Errorf("blob: exit %d, stderr %q", code, stderr)
	}
	client, err := azblob.NewClientFromConnectionString(az.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.ServiceClient().NewContainerClient("never-created").GetProperties(context.Background(), nil); err == nil {
		t.Error("verify created the container")
	}
}

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\n"); return l }

// TestExportSummaryAndLogs runs an export per source against the sandbox and checks the run
// summary against docs/schemas/summary.schema.json (camelCase keys, seconds as numbers) and that
// no log line repeats a key.
func TestExportSummaryAndLogs(t *testing.T) {
	sb := sandboxtest.Start(t, &sandbox.Options{RecordsPerDay: 2, PollInterval: 10 * time.Millisecond, PollsBeforeDone: -1})
	var dept string
	for _, s := range sb.Scopes() {
		if s.Kind == scope.Department {
			dept = s.String()
			break
		}
	}
	last := period.Of(time.Now()).Add(-1).String()
	for _, source := range []string{string(manifest.SourceUsageDetails), string(manifest.SourceCostDetails)} {
		t.Run(source, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, map[string]string{config.EnvToken: sb.Token()}, "export",
				"--endpoint", sb.URL(), "--scopes", dept, "--output-dir", t.TempDir(), "--periods", last,
				"--source", source, "--rate-per-scope", "10000", "--progress", "none", "--log-level", "debug")
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if err := schemas.Validate(schemas.Summary, []byte(stdout)); err != nil {
				t.Errorf("summary: %v\n%s", err, stdout)
			}
			lines := 0
			for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
				if !strings.HasPrefix(line, "{") {
					continue
				}
				lines++
				if dup := repeatedKeys(line); len(dup) > 0 {
					t.Errorf("log line repeats %v: %s", dup, line)
				}
			}
			if lines < 3 {
				t.Errorf("%d log lines", lines)
			}
		})
	}
	if err := schemas.Validate(schemas.Summary, []byte(`{"partitions":[],"rows":0,"bytes":0,"seconds":1,"rateBudget":{"Calls":1,"Waited":60569295828}}`)); err == nil {
		t.Error("the schema accepts the old PascalCase budget")
	}
}

// repeatedKeys returns the top-level keys a JSON object line holds more than once.
func repeatedKeys(line string) []string {
	dec := json.NewDecoder(strings.NewReader(line))
	seen := map[string]bool{}
	var dup []string
	if _, err := dec.Token(); err != nil {
		return []string{"(not JSON)"}
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return []string{"(not JSON)"}
		}
		k, _ := tok.(string)
		if seen[k] {
			dup = append(dup, k)
		}
		seen[k] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return []string{"(not JSON)"}
		}
	}
	return dup
}

// TestPlanExportFlags: the period flags go through the one plan; a refused request names the
// flags, and none plans the scheduled periods.
func TestPlanExportFlags(t *testing.T) {
	sub := scope.MustParse("/subscriptions/11111111-1111-1111-1111-111111111111")
	cfg := &config.Config{Scopes: []scope.Scope{sub}, Metrics: []metric.Metric{"actualcost", "usage"}, MaxMonths: 3, RestatementDays: 5}
	now := time.Date(2024, time.March, 3, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		periods, from, to string
		want              string // period names, or a part of the error
	}{
		{"", "", "", "202402,202403"},
		{"202401, 202402,202401", "", "", "202401,202402"},
		{"", "202401", "", "202401,202402,202403"},
		{"", "202401", "202402", "202401,202402"},
		{"202401", "202312", "", "use --periods or --from/--to, not both"},
		{"", "", "202401", "--to needs --from"},
		{"202404", "", "", "--periods: billing period 202404 is in the future (the current one is 202403)"},
		{"2024-13", "", "", "--periods: invalid billing period"},
		{"", "202401", "202406", "--to: billing period 202406 is in the future"},
		{"", "202402", "202401", "from 202402 is after to 202401"},
		{"", "202301", "", "202301..202403 is 15 months; at most 3 per job (--max-months, USAGE_EXPORT_MAX_MONTHS)"},
		{"202309,202310,202311,202312", "", "", "4 billing periods asked for; at most 3 per job (--max-months"},
	} {
		pl, err := planExport(context.Background(), tt.periods, tt.from, tt.to, cfg, now)
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			got = strings.Join(pl.PeriodNames(), ",")
			if len(pl.Partitions) != 2*len(pl.Periods) {
				t.Errorf("%q %q %q: %d partitions for %d periods × 2 metrics", tt.periods, tt.from, tt.to, len(pl.Partitions), len(pl.Periods))
			}
		}
		if !strings.Contains(got, tt.want) {
			t.Errorf("--periods %q --from %q --to %q: %q, want %q", tt.periods, tt.from, tt.to, got, tt.want)
		}
	}
}
