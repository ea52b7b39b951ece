package hostqueue_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/usage-export/usage-export/internal/azurite/azuritetest"
	"github.com/usage-export/usage-export/internal/hostqueue"
	"github.com/usage-export/usage-export/internal/workqueue"
)

func TestMain(m *testing.M) { os.Exit(azuritetest.Main(m)) }

// TestDeliveries: a 2xx deletes the message; a failing handler sees the message again with a
// growing DequeueCount and, after the last delivery, it is on the poison queue.
func TestDeliveries(t *testing.T) {
	az := azuritetest.Start(t)
	q, err := workqueue.New(workqueue.Settings{ConnectionString: az.ConnectionString(), Queue: fmt.Sprintf("hostqueue-%d", time.Now().UnixNano()%1e6)}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := q.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	counts := map[string][]int{} // job → DequeueCounts seen
	h := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var inv struct {
			Data     map[string]json.RawMessage
			Metadata struct {
				DequeueCount int
				Id           string
			}
		}
		if r.URL.Path != "/Worker" || json.NewDecoder(r.Body).Decode(&inv) != nil {
			http.Error(w, "bad invocation", http.StatusBadRequest)
			return
		}
		it, err := workqueue.Decode(inv.Data["item"])
		if err != nil || inv.Metadata.Id == "" {
			http.Error(w, "bad item", http.StatusBadRequest)
			return
		}
		mu.Lock()
		counts[it.Job] = append(counts[it.Job], inv.Metadata.DequeueCount)
		mu.Unlock()
		if it.Job == "fails" {
			http.Error(w, "failing", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"Outputs":{}}`))
	}))
	defer h.Close()
	host := hostqueue.New(hostqueue.Options{Work: q.Work(), Poison: q.Poison(), Function: "Worker", Binding: "item",
		Visibility: 4 * time.Second, RetryDelay: time.Second, MaxDequeueCount: 3, Poll: 50 * time.Millisecond})
	item := func(job string) workqueue.Item {
		return workqueue.Item{Version: workqueue.Version, Job: job, Scope: "/subscriptions/x", Period: "202401", Metric: "usage"}
	}
	if err := q.Enqueue(ctx, []workqueue.Item{item("ok"), item("fails")}); err != nil {
		t.Fatal(err)
	}
	lctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { host.Listen(lctx, "i1", h.URL); close(done) }()
	for host.Stats().Poisoned == 0 && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	<-done
	st := host.Stats()
	mu.Lock()
	defer mu.Unlock()
	if st.Deleted != 1 || st.Poisoned != 1 || st.Retried != 2 || fmt.Sprint(counts["ok"]) != "[1]" || fmt.Sprint(counts["fails"]) != "[1 2 3]" {
		t.Errorf("stats %+v, dequeue counts %v; want ok deleted at once and fails delivered 3 times, then poisoned", st, counts)
	}
	n := 0
	if _, err := q.DrainPoison(ctx, 10, func(p workqueue.Poisoned) error {
		if p.Err != nil || p.Item.Job != "fails" {
			t.Errorf("poison message %+v", p)
		}
		n++
		return nil
	}); err != nil || n != 1 {
		t.Errorf("poison queue: %d messages (%v), want 1", n, err)
	}
	peek, err := q.Work().PeekMessages(ctx, nil)
	if err != nil || len(peek.Messages) != 0 {
		t.Errorf("work queue still holds %d messages (%v)", len(peek.Messages), err)
	}
}
