package functions

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/usage-export/usage-export/internal/config"
	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/scope"
)

func TestTimerFixtureInvocation(t *testing.T) {
	s, env, _ := newTestServer(t, nil)
	rec := invoke(t, s, "/"+TimerFunction, fixture(t, "timer-invocation-request.json"), "fa4fcd1a-a965-431e-8f10-a15c07b4fe2a")
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d, want 200: %s", rec.Code, rec.Body)
	}
	hr := readHostResponse(t, rec)
	if len(hr.Outputs) != 0 {
		t.Errorf("Outputs = %v, want {} (the timer has no output bindings)", hr.Outputs)
	}
	if string(hr.ReturnValue) != "null" {
		t.Errorf("ReturnValue = %s, want null", hr.ReturnValue)
	}
	if got := strings.Join(hr.Logs, "\n"); !strings.Contains(got, "planned 6 partition(s)") || !strings.Contains(got, "6 committed") {
		t.Errorf("Logs = %q, want the plan and the outcome", got)
	}
	runs := env.fake.allRuns()
	if len(runs) != 1 || runs[0].ExecutionType != ExecScheduled || runs[0].Force || runs[0].Source != "" {
		t.Fatalf("runs = %+v, want one Scheduled run", runs)
	}
	// The export's own log lines carry the invocation id (the logger travels in ctx).
	var sawExportLine bool
	for _, line := range strings.Split(env.logs.String(), "\n") {
		if strings.Contains(line, "fake export run") {
			sawExportLine = true
			if !strings.Contains(line, `"invocation_id":"fa4fcd1a-a965-431e-8f10-a15c07b4fe2a"`) || !strings.Contains(line, `"function":"UsageExportTimer"`) {
				t.Errorf("export log line without invocation id and function: %s", line)
			}
		}
	}
	if !sawExportLine {
		t.Error("the export logged nothing through the invocation's context")
	}
	if env.stderr.String() != "" {
		t.Errorf("stderr = %q on success, want nothing", env.stderr)
	}
}

// TestTimerPlan checks the partitions of a run against the clock: every configured scope × the
// scheduled periods × the configured metrics.
func TestTimerPlan(t *testing.T) {
	tests := []struct {
		name    string
		now     time.Time
		restate string
		metrics string
		periods []string
	}{
		{"first day of the month", time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), "", "", []string{"202402", "202403"}},
		{"inside the window", time.Date(2024, 3, 5, 23, 59, 59, 0, time.UTC), "", "", []string{"202402", "202403"}},
		{"window over", time.Date(2024, 3, 6, 0, 0, 0, 0, time.UTC), "", "", []string{"202403"}},
		{"mid-month", time.Date(2024, 3, 17, 4, 0, 0, 0, time.UTC), "", "", []string{"202403"}},
		{"new year", time.Date(2025, 1, 2, 4, 0, 0, 0, time.UTC), "", "", []string{"202412", "202501"}},
		{"local offset is read as UTC", time.Date(2024, 2, 29, 20, 0, 0, 0, time.FixedZone("UTC-5", -5*3600)), "", "", []string{"202402", "202403"}},
		{"no restatement window", time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), "0", "", []string{"202403"}},
		{"two metrics", time.Date(2024, 3, 17, 0, 0, 0, 0, time.UTC), "", "actualcost,amortizedcost", []string{"202403"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, env, _ := newTestServer(t, func(d *Deps, env *testEnv) {
				settings := map[string]string{}
				if tt.restate != "" {
					settings[config.EnvRestatementDays] = tt.restate
				}
				if tt.metrics != "" {
					settings[config.EnvMetric] = tt.metrics
				}
				env.cfg = testConfig(t, settings)
				d.Config = env.cfg
				d.Now = func() time.Time { return tt.now }
			})
			rec := invoke(t, s, "/"+TimerFunction, fixture(t, "timer-invocation-request.json"), "i1")
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			runs := env.fake.allRuns()
			if len(runs) != 1 {
				t.Fatalf("%d runs, want 1", len(runs))
			}
			var got []string
			for _, p := range runs[0].Partitions {
				got = append(got, p.Scope.String()+" "+p.Period.String()+" "+p.Metric)
			}
			var want []string
			for _, sc := range env.cfg.Scopes {
				for _, p := range tt.periods {
					for _, m := range env.cfg.Metrics {
						want = append(want, sc.String()+" "+p+" "+m)
					}
				}
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("partitions\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

func TestTimerPayloadVariants(t *testing.T) {
	pastDue := strings.Replace(string(fixture(t, "timer-invocation-request.json")), `"IsPastDue": false`, `"IsPastDue": true`, 1)
	pythonTimer := string(fixture(t, "timer-info-python-library.json"))
	retry := `{"Data":{"timer":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":null,"IsPastDue":false}},` +
		`"Metadata":{"sys":{"MethodName":"UsageExportTimer","UtcNow":"2024-03-03T04:00:00Z","RandGuid":"x"},` +
		`"RetryContext":{"RetryCount":1,"MaxRetryCount":3,"Exception":null}}}`
	tests := []struct {
		name    string
		payload string
		status  int
		runs    int
	}{
		{"past due catches up the same way", pastDue, http.StatusOK, 1},
		{"local offsets and 7-digit fractions", `{"Data":{"timer":` + pythonTimer + `},"Metadata":{"sys":{}}}`, http.StatusOK, 1},
		{"null ScheduleStatus (useMonitor false) and a retry", retry, http.StatusOK, 1},
		{"first run: year-one Last", `{"Data":{"timer":{"ScheduleStatus":{"Last":"0001-01-01T00:00:00+00:00","Next":"2024-03-04T04:00:00+00:00","LastUpdated":"0001-01-01T00:00:00+00:00"},"IsPastDue":false}},"Metadata":{}}`, http.StatusOK, 1},
		{"no timer binding", `{"Data":{"myTimer":{"IsPastDue":false}},"Metadata":{}}`, http.StatusBadRequest, 0},
		{"timer is not an object", `{"Data":{"timer":"x"},"Metadata":{}}`, http.StatusBadRequest, 0},
		{"not JSON", `Data=1`, http.StatusBadRequest, 0},
		{"no Data", `{"Metadata":{}}`, http.StatusBadRequest, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, env, _ := newTestServer(t, nil)
			rec := invoke(t, s, "/"+TimerFunction, []byte(tt.payload), "i2")
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			readHostResponse(t, rec)
			if got := len(env.fake.allRuns()); got != tt.runs {
				t.Errorf("%d export runs, want %d", got, tt.runs)
			}
			if tt.status != http.StatusOK && !strings.Contains(env.stderr.String(), "UsageExportTimer invocation i2 failed") {
				t.Errorf("stderr = %q, want the failure (the host drops a failed reply's body)", env.stderr)
			}
		})
	}
}

// TestTimerOutcomes: only a failed partition or an interrupted run fails the invocation.
func TestTimerOutcomes(t *testing.T) {
	tests := []struct {
		name   string
		status string // for subB's partitions
		cancel bool
		want   int
	}{
		{"all committed", export.StatusCommitted, false, http.StatusOK},
		{"busy is not a failure", export.StatusBusy, false, http.StatusOK},
		{"held is not a failure", export.StatusHeld, false, http.StatusOK},
		{"a failed partition fails the run", export.StatusFailed, false, http.StatusInternalServerError},
		{"an interrupted run fails", export.StatusCommitted, true, http.StatusInternalServerError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, env, _ := newTestServer(t, nil)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			env.fake.hook = func(_ context.Context, p export.Partition, _ int) string {
				if p.Scope.Equal(scope.MustParse(subB)) {
					if tt.cancel {
						cancel()
					}
					return tt.status
				}
				return export.StatusCommitted
			}
			r := httptestRequest(ctx, fixture(t, "timer-invocation-request.json"))
			rec := serve(s, r)
			if rec.Code != tt.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.want, rec.Body)
			}
			hr := readHostResponse(t, rec)
			logs := strings.Join(hr.Logs, "\n")
			if !strings.Contains(logs, subB+" 202403 actualcost: "+map[bool]string{true: "failed", false: tt.status}[tt.cancel]) {
				t.Errorf("Logs do not report subB's partition: %s", logs)
			}
			failed := tt.want != http.StatusOK
			if got := env.stderr.String() != ""; got != failed {
				t.Errorf("stderr %q; want a line only on failure", env.stderr)
			}
		})
	}
}

func TestPartitionsSubScope(t *testing.T) {
	periods := []period.Period{{Year: 2024, Month: time.January}, {Year: 2024, Month: time.February}}
	scopes := []scope.Scope{
		scope.MustParse(eaAcct + "/providers/Microsoft.Billing/billingPeriods/202402"),
		scope.MustParse(subA),
	}
	var got []string
	for _, p := range Partitions(scopes, periods, []string{"actualcost", "usage"}) {
		got = append(got, p.Scope.String()+" "+p.Period.String()+" "+p.Metric)
	}
	want := []string{
		eaAcct + "/providers/Microsoft.Billing/billingPeriods/202402 202402 actualcost",
		eaAcct + "/providers/Microsoft.Billing/billingPeriods/202402 202402 usage",
		subA + " 202401 actualcost", subA + " 202401 usage", subA + " 202402 actualcost", subA + " 202402 usage",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Partitions:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestNormalizeResModel checks the test's model of the host's http output normalisation
// against the host's own cases (testdata/http-output-res-normalization.json).
func TestNormalizeResModel(t *testing.T) {
	var fx struct {
		Cases []struct {
			Input      string  `json:"input"`
			Normalized *string `json:"normalized"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(fixture(t, "http-output-res-normalization.json"), &fx); err != nil {
		t.Fatal(err)
	}
	for _, c := range fx.Cases {
		got, err := normalizeRes([]byte(c.Input))
		if c.Normalized == nil {
			if err == nil {
				t.Errorf("%s: normalised, want an error", c.Input)
			}
			continue
		}
		var want map[string]any
		if err := json.Unmarshal([]byte(*c.Normalized), &want); err != nil {
			t.Fatal(err)
		}
		gb, _ := json.Marshal(got)
		wb, _ := json.Marshal(want)
		if string(gb) != string(wb) {
			t.Errorf("%s: got %s, want %s", c.Input, gb, wb)
		}
	}
}
