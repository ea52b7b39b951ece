package functions

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/usage-export/usage-export/internal/config"
	"github.com/usage-export/usage-export/internal/jobs"
	"github.com/usage-export/usage-export/internal/store"
)

// TestTimerFixtureInvocation: the timer only plans and enqueues; the queue's invocations then
// export each partition, synchronously, with the invocation id in the export's log lines.
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
	if got := strings.Join(hr.Logs, "\n"); !strings.Contains(got, "planned 6 partition(s)") || !strings.Contains(got, "6 partition(s) enqueued") {
		t.Errorf("Logs = %q, want the plan and the enqueue", got)
	}
	if n := len(env.fake.allRuns()); n != 0 {
		t.Fatalf("%d export runs in the timer invocation, want 0 (it only enqueues)", n)
	}
	items := env.queue.take()
	if len(items) != 6 {
		t.Fatalf("%d messages, want 6", len(items))
	}
	for i, code := range deliver(t, s, items, 1) {
		if code != http.StatusOK {
			t.Errorf("delivery %d: host status %d, want 200", i, code)
		}
	}
	runs := env.fake.allRuns()
	if len(runs) != 6 || runs[0].ExecutionType != jobs.ExecScheduled || runs[0].Force || runs[0].Source != "" || len(runs[0].Partitions) != 1 {
		t.Fatalf("runs = %+v, want six Scheduled runs of one partition", runs)
	}
	if j := readJob(t, env, items[0].Job); j.State != jobs.Succeeded || j.ExecutionType != jobs.ExecScheduled {
		t.Errorf("job %s %s, want a succeeded Scheduled job", j.ID, j.State)
	}
	// The export's own log lines carry the invocation id (the logger travels in ctx).
	var sawExportLine bool
	for _, line := range strings.Split(env.logs.String(), "\n") {
		if strings.Contains(line, "fake export run") {
			sawExportLine = true
			if !strings.Contains(line, `"invocation_id":"inv-w"`) || !strings.Contains(line, `"function":"UsageExportWorker"`) {
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
			var got []string
			for _, it := range env.queue.take() {
				got = append(got, it.Scope+" "+it.Period+" "+it.Metric)
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
		runs    int // jobs enqueued
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
			jobsQueued := map[string]bool{}
			for _, it := range env.queue.take() {
				jobsQueued[it.Job] = true
			}
			if got := len(jobsQueued); got != tt.runs {
				t.Errorf("%d jobs enqueued, want %d", got, tt.runs)
			}
			if tt.status != http.StatusOK && !strings.Contains(env.stderr.String(), "UsageExportTimer invocation i2 failed") {
				t.Errorf("stderr = %q, want the failure (the host drops a failed reply's body)", env.stderr)
			}
		})
	}
}

// TestTimerOutcomes: the timer fails only when it cannot enqueue, and a second run while the
// same plan's job is open enqueues nothing, so a host retry never re-exports committed
// partitions.
func TestTimerOutcomes(t *testing.T) {
	s, env, _ := newTestServer(t, nil)
	env.queue.err = errors.New("queue unavailable")
	rec := invoke(t, s, "/"+TimerFunction, fixture(t, "timer-invocation-request.json"), "t1")
	if rec.Code != http.StatusInternalServerError || !strings.Contains(env.stderr.String(), "could not enqueue") {
		t.Fatalf("status %d, stderr %q; want 500 and \"could not enqueue\" on stderr", rec.Code, env.stderr)
	}
	// The host's retry: the stored job is found and, once the queue answers, enqueued again.
	env.queue.err = nil
	env.now = env.now.Add(5 * time.Minute)
	rec = invoke(t, s, "/"+TimerFunction, fixture(t, "timer-invocation-request.json"), "t2")
	if rec.Code != http.StatusOK {
		t.Fatalf("retry: status %d: %s", rec.Code, rec.Body)
	}
	items := env.queue.take()
	if len(items) != 6 {
		t.Fatalf("retry enqueued %d messages, want the job's 6", len(items))
	}
	// Half the partitions commit, then the timer fires again: nothing new is enqueued.
	deliver(t, s, items[:3], 1)
	rec = invoke(t, s, "/"+TimerFunction, fixture(t, "timer-invocation-request.json"), "t3")
	if rec.Code != http.StatusOK || len(env.queue.take()) != 0 {
		t.Fatalf("a run while the job is open: status %d; want 200 and nothing enqueued", rec.Code)
	}
	if !strings.Contains(strings.Join(readHostResponse(t, rec).Logs, "\n"), "still running") {
		t.Errorf("Logs do not say the open job is reused: %s", rec.Body)
	}
	deliver(t, s, items[3:], 1)
	if n := len(env.fake.allRuns()); n != 6 {
		t.Errorf("%d export runs, want 6 (each partition once)", n)
	}
	// The job ended: the next run makes a new one.
	rec = invoke(t, s, "/"+TimerFunction, fixture(t, "timer-invocation-request.json"), "t4")
	next := env.queue.take()
	if rec.Code != http.StatusOK || len(next) != 6 || next[0].Job == items[0].Job {
		t.Errorf("run after the job ended: status %d, %d messages; want a new job of 6", rec.Code, len(next))
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

// TestTimerPrunesOldJobs: the timer deletes jobs that ended more than Retention ago, with their
// partition records, and keeps the others.
func TestTimerPrunesOldJobs(t *testing.T) {
	s, env, _ := newTestServer(t, nil)
	old := callHTTP(t, s, "POST", "", `{"periods":["202401"],"scopes":["`+subA+`"]}`, "application/json")
	var j jobs.Job
	if err := json.Unmarshal(old.Body, &j); err != nil {
		t.Fatal(err)
	}
	deliver(t, s, env.queue.take(), 1)
	open := callHTTP(t, s, "POST", "", `{"periods":["202402"],"scopes":["`+subA+`"]}`, "application/json")
	env.queue.take()
	env.now = env.now.Add(Retention + time.Hour)
	rec := invoke(t, s, "/"+TimerFunction, fixture(t, "timer-invocation-request.json"), "p1")
	if !strings.Contains(strings.Join(readHostResponse(t, rec).Logs, "\n"), "deleted 1 job(s)") {
		t.Errorf("Logs %s, want one job deleted", rec.Body)
	}
	if got := callHTTP(t, s, "GET", j.ID, "", ""); got.Status != http.StatusNotFound {
		t.Errorf("old job: GET %d, want 404", got.Status)
	}
	var o jobs.Job
	_ = json.Unmarshal(open.Body, &o)
	if got := callHTTP(t, s, "GET", o.ID, "", ""); got.Status != http.StatusOK {
		t.Errorf("open job: GET %d, want 200 (kept)", got.Status)
	}
	n := 0
	_ = env.backend.List(context.Background(), "usage/_control/jobs/"+j.ID+"/", func(store.Item) error { n++; return nil })
	if n != 0 {
		t.Errorf("%d partition records left of the deleted job", n)
	}
}
