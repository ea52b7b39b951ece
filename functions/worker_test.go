package functions

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/usage-export/usage-export/internal/jobs"
)

// TestWorkerPayloads decodes the host's queue payload: the docs' fixture (whose message is not
// one of ours), the message as a JSON string or as a JSON value, DequeueCount as a number or a
// string.
func TestWorkerPayloads(t *testing.T) {
	s, env, _ := newTestServer(t, nil)
	docs := fixture(t, "queue-invocation-request-docs.json")
	rec := invoke(t, s, "/"+WorkerFunction, docs, "q0")
	if rec.Code != http.StatusBadRequest || !strings.Contains(env.stderr.String(), `invocation has no Data.item`) {
		t.Errorf("fixture (binding myQueueItem): %d, stderr %q; want 400 naming the binding", rec.Code, env.stderr)
	}
	readHostResponse(t, rec)
	rec = invoke(t, s, "/"+WorkerFunction, []byte(strings.Replace(string(docs), `"myQueueItem"`, `"item"`, 1)), "q00")
	if rec.Code != http.StatusBadRequest || !strings.Contains(env.stderr.String(), "UsageExportWorker invocation q00 failed: work item") {
		t.Errorf("fixture message: %d, stderr %q; want 400 and the reason on stderr (the message goes to poison in the end)", rec.Code, env.stderr)
	}

	got := callHTTP(t, s, "POST", "", `{"periods":["202401"],"scopes":["`+subA+`"],"metric":["actualcost","usage"]}`, "application/json")
	var j jobs.Job
	if err := json.Unmarshal(got.Body, &j); err != nil {
		t.Fatal(err)
	}
	items := env.queue.take()
	// Message text as a JSON string, DequeueCount a string.
	p := strings.Replace(string(queuePayload(t, items[0], "m0", 1)), `"DequeueCount":1`, `"DequeueCount":"1"`, 1)
	if rec := invoke(t, s, "/"+WorkerFunction, []byte(p), "q1"); rec.Code != http.StatusOK {
		t.Fatalf("string item: %d %s", rec.Code, rec.Body)
	}
	// The message as a JSON value.
	var inv map[string]map[string]any
	if err := json.Unmarshal(queuePayload(t, items[1], "m1", 1), &inv); err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal([]byte(inv["Data"][ItemBinding].(string)), &v); err != nil {
		t.Fatal(err)
	}
	inv["Data"][ItemBinding] = v
	b, _ := json.Marshal(inv)
	if rec := invoke(t, s, "/"+WorkerFunction, b, "q2"); rec.Code != http.StatusOK {
		t.Fatalf("object item: %d %s", rec.Code, rec.Body)
	}
	if v := readJob(t, env, j.ID); v.State != jobs.Succeeded {
		t.Errorf("job %s, want succeeded", v.State)
	}
}

// TestCancelOverHTTP: DELETE cancels an open job (its queued partitions are skipped) and
// refuses a finished one.
func TestCancelOverHTTP(t *testing.T) {
	s, env, _ := newTestServer(t, nil)
	got := callHTTP(t, s, "POST", "", `{"periods":["202401"],"scopes":["`+subA+`","`+subB+`"]}`, "application/json")
	var j jobs.Job
	if err := json.Unmarshal(got.Body, &j); err != nil {
		t.Fatal(err)
	}
	items := env.queue.take()
	deliver(t, s, items[:1], 1)
	del := callHTTP(t, s, "DELETE", j.ID, "", "")
	if del.Status != http.StatusAccepted {
		t.Fatalf("DELETE: %d %s", del.Status, del.Body)
	}
	if codes := deliver(t, s, items[1:], 1); codes[0] != http.StatusOK {
		t.Fatalf("delivery after cancel: %d, want 200 (skipped)", codes[0])
	}
	v := readJob(t, env, j.ID)
	if v.State != jobs.Cancelled || v.Partitions[0].Status != "committed" || v.Partitions[1].Status != jobs.PartCancelled {
		t.Errorf("job %s %+v, want cancelled with the first partition committed", v.State, v.Partitions)
	}
	if n := len(env.fake.allRuns()); n != 1 {
		t.Errorf("%d exports, want 1", n)
	}
	if again := callHTTP(t, s, "DELETE", j.ID, "", ""); again.Status != http.StatusConflict {
		t.Errorf("DELETE of a cancelled job: %d, want 409", again.Status)
	}
}

// TestTooManyOpenJobs: past the bound, POST answers 429 with Retry-After.
func TestTooManyOpenJobs(t *testing.T) {
	s, _, _ := newTestServer(t, nil)
	var last callerResponse
	for i := 0; i <= jobs.DefaultMaxOpenJobs; i++ {
		last = callHTTP(t, s, "POST", "", `{"periods":["2023`+[]string{"01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12"}[i]+`"]}`, "application/json")
	}
	if last.Status != http.StatusTooManyRequests || last.Headers["Retry-After"] == "" {
		t.Errorf("job %d: %d (Retry-After %q), want 429 with Retry-After", jobs.DefaultMaxOpenJobs+1, last.Status, last.Headers["Retry-After"])
	}
}
