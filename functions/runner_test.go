package functions

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/usage-export/usage-export/internal/config"
	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/jobs"
	"github.com/usage-export/usage-export/internal/scope"
)

// submit posts an on-demand export and returns the job id.
func submit(t *testing.T, s *Server, body string) string {
	t.Helper()
	got := callHTTP(t, s, "POST", "", body, "application/json")
	if got.Status != 202 {
		t.Fatalf("POST: %d %s", got.Status, got.Body)
	}
	var j jobs.Job
	if err := json.Unmarshal(got.Body, &j); err != nil {
		t.Fatal(err)
	}
	return j.ID
}

// startRunner runs s.Run until the test ends.
func startRunner(t *testing.T, s *Server) {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- s.Run(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-errc; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func statuses(j *jobs.Job) string {
	var out []string
	for _, p := range j.Partitions {
		out = append(out, p.BillingPeriod+":"+p.Status)
	}
	return strings.Join(out, " ")
}

func TestJobOutcomes(t *testing.T) {
	tests := []struct {
		name     string
		hook     func(ctx context.Context, p export.Partition, call int) string
		state    jobs.State
		statuses string
		errPart  string
		calls    int // export runs
	}{
		{"all committed", nil, jobs.Succeeded, "202401:committed 202402:committed", "", 1},
		{"a failed partition", func(_ context.Context, p export.Partition, _ int) string {
			if p.Period.String() == "202402" {
				return export.StatusFailed
			}
			return export.StatusCommitted
		}, jobs.Failed, "202401:committed 202402:failed", "1 failed", 1},
		{"held by the drop guard", func(_ context.Context, p export.Partition, _ int) string {
			if p.Period.String() == "202401" {
				return export.StatusHeld
			}
			return export.StatusCommitted
		}, jobs.Failed, "202401:held 202402:committed", `"force": true`, 1},
		{"busy, then free", func(_ context.Context, p export.Partition, call int) string {
			if p.Period.String() == "202402" && call < 3 {
				return export.StatusBusy
			}
			return export.StatusCommitted
		}, jobs.Succeeded, "202401:committed 202402:committed", "", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, env, _ := newTestServer(t, nil)
			env.fake.hook = tt.hook
			id := submit(t, s, `{"scopes":["`+subA+`"],"periods":["202401","202402"],"source":"usageDetails","force":true}`)
			startRunner(t, s)
			j := waitJob(t, env, id)
			if j.State != tt.state || statuses(j) != tt.statuses {
				t.Errorf("job %s [%s], want %s [%s]; error %q", j.State, statuses(j), tt.state, tt.statuses, j.Error)
			}
			if !strings.Contains(j.Error, tt.errPart) || (tt.errPart == "") != (j.Error == "") {
				t.Errorf("job error %q, want it to contain %q", j.Error, tt.errPart)
			}
			if j.FinishedTime == nil || j.StartedTime == nil || j.Attempts != 1 || j.Worker == nil || j.Worker.Instance != "vm1" {
				t.Errorf("job times/attempts/worker: %+v", j)
			}
			runs := env.fake.allRuns()
			if len(runs) != tt.calls {
				t.Fatalf("%d export runs, want %d", len(runs), tt.calls)
			}
			for _, r := range runs {
				if r.ExecutionType != ExecOnDemand || r.Source != "usageDetails" || !r.Force || r.Progress == nil {
					t.Errorf("run %+v: want OnDemand, the job's source and force, and a progress callback", r)
				}
			}
			if tt.calls > 1 && len(runs[1].Partitions) != 1 {
				t.Errorf("a retry re-ran %d partitions, want only the busy one", len(runs[1].Partitions))
			}
			for _, p := range j.Partitions {
				if p.Status == export.StatusCommitted && (p.Rows != 10 || p.Bytes != 100 || p.Pages != 2 || p.Manifest == "") {
					t.Errorf("committed partition without its counts: %+v", p)
				}
				if p.Status == export.StatusFailed && !strings.Contains(p.Error, "403") {
					t.Errorf("failed partition without its error: %+v", p)
				}
			}
		})
	}
}

func TestBusyGivesUp(t *testing.T) {
	s, env, _ := newTestServer(t, func(d *Deps, _ *testEnv) {
		d.Options = &Options{FlushInterval: 5 * time.Millisecond, BusyRetryInterval: time.Millisecond, BusyRetryFor: 20 * time.Millisecond}
	})
	env.fake.hook = func(context.Context, export.Partition, int) string { return export.StatusBusy }
	id := submit(t, s, `{"scopes":["`+subA+`"],"periods":["202401"]}`)
	startRunner(t, s)
	j := waitJob(t, env, id)
	if j.State != jobs.Failed || statuses(j) != "202401:busy" || !strings.Contains(j.Error, "busy") {
		t.Errorf("job %s [%s] %q, want failed with the partition busy", j.State, statuses(j), j.Error)
	}
	if n := len(env.fake.allRuns()); n < 2 {
		t.Errorf("%d export runs, want retries", n)
	}
}

// TestProgressIsSaved: while a partition runs, its progress is visible in the stored job.
func TestProgressIsSaved(t *testing.T) {
	s, env, _ := newTestServer(t, nil)
	seen := make(chan *jobs.Job, 1)
	env.fake.hook = func(ctx context.Context, p export.Partition, _ int) string {
		if p.Period.String() != "202402" {
			return export.StatusCommitted
		}
		// The fake reported a page of 202402; wait until a flush stored it.
		for ctx.Err() == nil {
			j, err := jobs.New(env.backend, env.cfg.Prefix).Get(ctx, env.jobID)
			if err == nil && j.Partitions[1].Rows == 5 && j.Partitions[0].Status == export.StatusCommitted {
				seen <- j
				break
			}
			time.Sleep(time.Millisecond)
		}
		return export.StatusCommitted
	}
	id := submit(t, s, `{"scopes":["`+subA+`"],"periods":["202401","202402"]}`)
	env.jobID = id
	startRunner(t, s)
	j := waitJob(t, env, id)
	if j.State != jobs.Succeeded {
		t.Fatalf("job %s", j.State)
	}
	mid := <-seen
	if mid.State != jobs.Running || mid.Partitions[1].Status != jobs.PartRunning || mid.HeartbeatTime == nil {
		t.Errorf("stored mid-run: %s [%s], want running with 202402 running", mid.State, statuses(mid))
	}
}

// TestShutdownThenResume: Shutdown interrupts a job, which stays running with its unfinished
// partitions pending; the next process on the instance resumes it at start and finishes only
// what was left.
func TestShutdownThenResume(t *testing.T) {
	s1, env, d := newTestServer(t, nil)
	started := make(chan struct{})
	env.fake.hook = func(ctx context.Context, p export.Partition, _ int) string {
		if p.Period.String() == "202402" {
			close(started)
			<-ctx.Done() // a long partition, cut by the shutdown
		}
		return export.StatusCommitted
	}
	id := submit(t, s1, `{"scopes":["`+subA+`"],"periods":["202401","202402","202403"]}`)
	errc := make(chan error, 1)
	go func() { errc <- s1.Run(context.Background()) }()
	<-started
	if err := s1.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	j := readJob(t, env, id)
	if j.State != jobs.Running || statuses(j) != "202401:committed 202402:pending 202403:pending" || j.Attempts != 1 {
		t.Fatalf("after shutdown: %s [%s] attempts %d, want running [committed pending pending] 1", j.State, statuses(j), j.Attempts)
	}
	if j.Worker != nil {
		t.Errorf("after shutdown the job still names worker %+v; a stopped worker releases it", j.Worker)
	}

	// The platform starts the app again, here on another instance: a released job is taken up
	// at once, without waiting for a stale heartbeat.
	fake2 := &fakeExport{}
	d.Export, d.InstanceID = fake2.Export, "vm2"
	s2 := New(*d)
	n, err := s2.ResumeJobs(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("ResumeJobs = %d, %v; want 1", n, err)
	}
	if n, _ := s2.ResumeJobs(context.Background()); n != 0 {
		t.Errorf("second ResumeJobs queued %d again", n)
	}
	startRunner(t, s2)
	j = waitJob(t, env, id)
	if j.State != jobs.Succeeded || j.Attempts != 2 {
		t.Errorf("resumed job %s attempts %d, want succeeded 2", j.State, j.Attempts)
	}
	runs := fake2.allRuns()
	if len(runs) != 1 || len(runs[0].Partitions) != 2 || runs[0].Partitions[0].Period.String() != "202402" {
		t.Errorf("resumed runs %+v, want one run of the 2 unfinished partitions", runs)
	}
}

func TestResumeRules(t *testing.T) {
	now := testNow
	fresh, stale, old := now.Add(-time.Minute), now.Add(-time.Hour), now.Add(-31*24*time.Hour)
	tests := []struct {
		name    string
		job     jobs.Job
		queued  bool
		deleted bool
	}{
		{"queued", jobs.Job{State: jobs.Queued}, true, false},
		{"running on another instance, alive", jobs.Job{State: jobs.Running, Worker: &jobs.Worker{Instance: "vm2", Process: "p"}, HeartbeatTime: &fresh}, false, false},
		{"running on another instance, silent", jobs.Job{State: jobs.Running, Worker: &jobs.Worker{Instance: "vm2", Process: "p"}, HeartbeatTime: &stale}, true, false},
		{"running on this instance, old process", jobs.Job{State: jobs.Running, Worker: &jobs.Worker{Instance: "vm1", Process: "p"}, HeartbeatTime: &fresh}, true, false},
		{"succeeded recently", jobs.Job{State: jobs.Succeeded, FinishedTime: &fresh}, false, false},
		{"failed long ago", jobs.Job{State: jobs.Failed, FinishedTime: &old}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, env, _ := newTestServer(t, nil)
			js := jobs.New(env.backend, env.cfg.Prefix)
			j := tt.job
			j.ID, j.CreatedTime = jobs.NewID(now), now.Add(-32*24*time.Hour)
			if err := js.Create(context.Background(), &j); err != nil {
				t.Fatal(err)
			}
			n, err := s.ResumeJobs(context.Background())
			if err != nil || (n == 1) != tt.queued {
				t.Errorf("ResumeJobs = %d, %v; want queued %v", n, err, tt.queued)
			}
			_, err = js.Get(context.Background(), j.ID)
			if gone := err != nil; gone != tt.deleted {
				t.Errorf("deleted = %v (%v), want %v", gone, err, tt.deleted)
			}
		})
	}
}

func TestMaxAttempts(t *testing.T) {
	s, env, _ := newTestServer(t, nil)
	js := jobs.New(env.backend, env.cfg.Prefix)
	j := &jobs.Job{ID: jobs.NewID(testNow), State: jobs.Running, CreatedTime: testNow, Attempts: DefaultMaxAttempts,
		Worker:     &jobs.Worker{Instance: "vm1", Process: "dead"},
		Request:    jobs.Request{Scopes: []string{subA}, Periods: []string{"202401"}, Metrics: []string{"actualcost"}},
		Partitions: []jobs.Partition{{Scope: subA, BillingPeriod: "202401", Metric: "actualcost", Status: jobs.PartPending}}}
	if err := js.Create(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	s.runJob(context.Background(), j.ID)
	got := readJob(t, env, j.ID)
	if got.State != jobs.Failed || !strings.Contains(got.Error, "gave up after 5 attempts") || got.FinishedTime == nil {
		t.Errorf("job %s %q, want failed after 5 attempts", got.State, got.Error)
	}
	if n := len(env.fake.allRuns()); n != 0 {
		t.Errorf("%d export runs for a job given up", n)
	}
}

// TestTakenOver: when another worker overwrites the job, this one stops and does not write it.
func TestTakenOver(t *testing.T) {
	s, env, _ := newTestServer(t, nil)
	js := jobs.New(env.backend, env.cfg.Prefix)
	env.fake.hook = func(ctx context.Context, p export.Partition, _ int) string {
		j, err := js.Get(ctx, env.jobID)
		if err != nil {
			t.Error(err)
			return export.StatusFailed
		}
		j.Worker = &jobs.Worker{Instance: "vm9", Process: "other"}
		if err := js.Save(ctx, j); err != nil {
			t.Error(err)
		}
		<-ctx.Done() // cancelled once the flush sees the conflict
		return export.StatusFailed
	}
	env.jobID = submit(t, s, `{"scopes":["`+subA+`"],"periods":["202401"]}`)
	s.runJob(context.Background(), env.jobID)
	got := readJob(t, env, env.jobID)
	if got.Worker == nil || got.Worker.Instance != "vm9" {
		t.Errorf("worker %+v: the taken-over job was overwritten", got.Worker)
	}
}

// TestScopeNoLongerAllowed: a job resumed after its scope left the settings does not read it.
func TestScopeNoLongerAllowed(t *testing.T) {
	s1, env, d := newTestServer(t, nil)
	id := submit(t, s1, `{"scopes":["`+subA+`","`+subB+`"],"periods":["202401"]}`)
	d.Config = testConfig(t, map[string]string{config.EnvScopes: subA})
	s2 := New(*d)
	if n, err := s2.ResumeJobs(context.Background()); n != 1 || err != nil {
		t.Fatalf("ResumeJobs = %d, %v", n, err)
	}
	s2.runJob(context.Background(), id)
	j := readJob(t, env, id)
	if j.State != jobs.Failed || statuses(j) != "202401:committed 202401:failed" || !strings.Contains(j.Partitions[1].Error, "no longer allowed") {
		t.Errorf("job %s [%s] %+v", j.State, statuses(j), j.Partitions[1])
	}
	for _, r := range env.fake.allRuns() {
		for _, p := range r.Partitions {
			if p.Scope.Equal(scope.MustParse(subB)) {
				t.Errorf("exported %s, which is no longer configured", subB)
			}
		}
	}
}

// TestTimerResumesJobs: a job accepted by a process that died before running it is picked up
// by the next timer run.
func TestTimerResumesJobs(t *testing.T) {
	s1, env, d := newTestServer(t, nil)
	id := submit(t, s1, `{"scopes":["`+subA+`"],"periods":["202401"]}`)
	s2 := New(*d) // s1 died without running it
	rec := invoke(t, s2, "/"+TimerFunction, fixture(t, "timer-invocation-request.json"), "t1")
	hr := readHostResponse(t, rec)
	if !strings.Contains(strings.Join(hr.Logs, "\n"), "resumed 1 unfinished job(s)") {
		t.Errorf("Logs %q, want the resumed job", hr.Logs)
	}
	startRunner(t, s2)
	if j := waitJob(t, env, id); j.State != jobs.Succeeded {
		t.Errorf("job %s, want succeeded", j.State)
	}
}

// TestGetResumesOrphanedJob: polling a job whose worker is gone queues it here, so a caller
// that follows its job keeps it moving between timer runs; a job alive elsewhere is left alone.
func TestGetResumesOrphanedJob(t *testing.T) {
	for _, tt := range []struct {
		name   string
		beat   time.Duration // heartbeat age
		resume bool
	}{
		{"silent worker elsewhere", time.Hour, true},
		{"live worker elsewhere", time.Second, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, env, _ := newTestServer(t, nil)
			js := jobs.New(env.backend, env.cfg.Prefix)
			beat, started := testNow.Add(-tt.beat), testNow.Add(-2*time.Hour)
			j := &jobs.Job{ID: jobs.NewID(testNow), State: jobs.Running, CreatedTime: started, StartedTime: &started,
				HeartbeatTime: &beat, Attempts: 1, Worker: &jobs.Worker{Instance: "vm2", Process: "p"},
				Request:    jobs.Request{Scopes: []string{subA}, Periods: []string{"202401"}, Metrics: []string{"actualcost"}},
				Partitions: []jobs.Partition{{Scope: subA, BillingPeriod: "202401", Metric: "actualcost", Status: jobs.PartPending}}}
			if err := js.Create(context.Background(), j); err != nil {
				t.Fatal(err)
			}
			if got := callHTTP(t, s, "GET", j.ID, "", ""); got.Status != 200 {
				t.Fatalf("GET: %d %s", got.Status, got.Body)
			}
			s.q.mu.Lock()
			queued := s.q.known[j.ID]
			s.q.mu.Unlock()
			if queued != tt.resume {
				t.Fatalf("queued after GET = %v, want %v", queued, tt.resume)
			}
			if !tt.resume {
				return
			}
			startRunner(t, s)
			if got := waitJob(t, env, j.ID); got.State != jobs.Succeeded || got.Attempts != 2 {
				t.Errorf("job %s after %d attempts, want succeeded after 2", got.State, got.Attempts)
			}
		})
	}
}
