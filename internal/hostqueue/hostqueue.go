// Package hostqueue plays what the Functions host does with a queue trigger, for tests and the
// demo.
package hostqueue

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"
	"github.com/google/uuid"
)

// Options configure a Host; zero fields get the host's defaults, scaled down for tests.
type Options struct {
	// Work and Poison are the queue and its poison queue.
	Work, Poison *azqueue.QueueClient
	// Function is the queue-triggered function's name; Binding its trigger's binding name.
	Function, Binding string
	// BatchSize is how many messages an instance receives at once; it fetches more when fewer
	// than NewBatchThreshold are in flight (host.json extensions.queues; defaults 4 and 2).
	BatchSize, NewBatchThreshold int
	// Visibility is the receive visibility timeout, renewed at half of it while an invocation
	// runs (default 10 s; the host uses 10 min).
	Visibility time.Duration
	// RetryDelay is host.json's visibilityTimeout: how long a failed message stays hidden
	// (default 1 s).
	RetryDelay time.Duration
	// MaxDequeueCount moves a message to the poison queue when its delivery with this count
	// fails (default 5).
	MaxDequeueCount int
	// Poll is the pause when the queue is empty (default 200 ms).
	Poll time.Duration
	// Logf receives one line per delivery; nil discards.
	Logf func(format string, args ...any)
}

// Host dispatches queue messages to instances.
type Host struct {
	o      Options
	client *http.Client

	mu    sync.Mutex
	stats Stats
}

// Stats count what the host did.
type Stats struct {
	Invocations int            // invocations posted
	ByInstance  map[string]int // invocations per instance
	Deleted     int            // 2xx replies
	Retried     int            // non-2xx replies made visible again
	Poisoned    int            // moved to the poison queue
	Lost        int            // the instance died during the invocation
}

// New returns a Host.
func New(o Options) *Host {
	if o.BatchSize <= 0 {
		o.BatchSize = 4
	}
	if o.NewBatchThreshold <= 0 {
		o.NewBatchThreshold = o.BatchSize / 2
	}
	if o.Visibility <= 0 {
		o.Visibility = 10 * time.Second
	}
	if o.RetryDelay <= 0 {
		o.RetryDelay = time.Second
	}
	if o.MaxDequeueCount <= 0 {
		o.MaxDequeueCount = 5
	}
	if o.Poll <= 0 {
		o.Poll = 200 * time.Millisecond
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	return &Host{o: o, client: &http.Client{}, stats: Stats{ByInstance: map[string]int{}}}
}

// Stats returns a snapshot of the counters.
func (h *Host) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.stats
	s.ByInstance = map[string]int{}
	for k, v := range h.stats.ByInstance {
		s.ByInstance[k] = v
	}
	return s
}

func (h *Host) count(f func(*Stats)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f(&h.stats)
}

// Listen runs instance's listener until ctx ends (the instance stops): it invokes
// base + "/" + Function. It returns when the listener and its invocations have stopped.
func (h *Host) Listen(ctx context.Context, instance, base string) {
	var wg sync.WaitGroup
	inflight := make(chan struct{}, h.o.BatchSize+h.o.NewBatchThreshold)
	for ctx.Err() == nil {
		free := cap(inflight) - len(inflight)
		if free < h.o.BatchSize-h.o.NewBatchThreshold || free == 0 {
			sleep(ctx, 20*time.Millisecond)
			continue
		}
		n := int32(min(free, h.o.BatchSize, 32))
		vis := int32(h.o.Visibility / time.Second)
		resp, err := h.o.Work.DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{NumberOfMessages: &n, VisibilityTimeout: &vis})
		if err != nil || len(resp.Messages) == 0 {
			sleep(ctx, h.o.Poll)
			continue
		}
		for _, m := range resp.Messages {
			inflight <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-inflight }()
				h.deliver(ctx, instance, base, m)
			}()
		}
	}
	wg.Wait()
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// deliver invokes the function for one message and settles the message by the reply.
func (h *Host) deliver(ctx context.Context, instance, base string, m *azqueue.DequeuedMessage) {
	id, receipt, text := deref(m.MessageID), deref(m.PopReceipt), deref(m.MessageText)
	count := 0
	if m.DequeueCount != nil {
		count = int(*m.DequeueCount)
	}
	decoded, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		decoded = []byte(text) // the host would fail to decode it: the handler sees the raw text
	}
	payload, _ := json.Marshal(map[string]any{
		"Data": map[string]any{h.o.Binding: string(decoded)},
		"Metadata": map[string]any{
			"DequeueCount": count, "Id": id, "PopReceipt": receipt,
			"InsertionTime": timeStr(m.InsertionTime), "ExpirationTime": timeStr(m.ExpirationTime),
			"NextVisibleTime": timeStr(m.TimeNextVisible),
			"sys":             map[string]any{"MethodName": h.o.Function, "UtcNow": time.Now().UTC().Format(time.RFC3339Nano), "RandGuid": uuid.NewString()},
		},
	})
	// Renew the visibility while the invocation runs, as the host's queue listener does.
	var rmu sync.Mutex
	renewCtx, stopRenew := context.WithCancel(context.WithoutCancel(ctx))
	renewDone := make(chan struct{})
	go func() {
		defer close(renewDone)
		tick := time.NewTicker(h.o.Visibility / 2)
		defer tick.Stop()
		for {
			select {
			case <-renewCtx.Done():
				return
			case <-ctx.Done():
				return // the instance died: the host stops renewing too
			case <-tick.C:
			}
			rmu.Lock()
			r, err := h.o.Work.UpdateMessage(renewCtx, id, receipt, text, &azqueue.UpdateMessageOptions{VisibilityTimeout: ptr(int32(h.o.Visibility / time.Second))})
			if err == nil && r.PopReceipt != nil {
				receipt = *r.PopReceipt
			}
			rmu.Unlock()
		}
	}()
	h.count(func(s *Stats) { s.Invocations++; s.ByInstance[instance]++ })
	status, err := h.post(ctx, base, payload)
	stopRenew()
	<-renewDone
	rmu.Lock()
	defer rmu.Unlock()
	bg := context.WithoutCancel(ctx)
	switch {
	case err != nil || ctx.Err() != nil:
		// The instance is gone: nobody settles the message; it reappears when its visibility
		// timeout runs out.
		h.count(func(s *Stats) { s.Lost++ })
		h.o.Logf("hostqueue: %s: message %s delivery %d lost with the instance (%v)", instance, id, count, err)
	case status/100 == 2:
		if _, err := h.o.Work.DeleteMessage(bg, id, receipt, nil); err != nil {
			h.o.Logf("hostqueue: deleting %s: %v", id, err)
		}
		h.count(func(s *Stats) { s.Deleted++ })
		h.o.Logf("hostqueue: %s: message %s delivery %d: %d, deleted", instance, id, count, status)
	case count >= h.o.MaxDequeueCount:
		if _, err := h.o.Poison.EnqueueMessage(bg, text, &azqueue.EnqueueMessageOptions{TimeToLive: ptr(int32(-1))}); err != nil {
			h.o.Logf("hostqueue: poisoning %s: %v", id, err)
			return
		}
		if _, err := h.o.Work.DeleteMessage(bg, id, receipt, nil); err != nil {
			h.o.Logf("hostqueue: deleting %s: %v", id, err)
		}
		h.count(func(s *Stats) { s.Poisoned++ })
		h.o.Logf("hostqueue: %s: message %s delivery %d: %d, moved to the poison queue", instance, id, count, status)
	default:
		if _, err := h.o.Work.UpdateMessage(bg, id, receipt, text, &azqueue.UpdateMessageOptions{VisibilityTimeout: ptr(int32(h.o.RetryDelay / time.Second))}); err != nil {
			h.o.Logf("hostqueue: releasing %s: %v", id, err)
		}
		h.count(func(s *Stats) { s.Retried++ })
		h.o.Logf("hostqueue: %s: message %s delivery %d: %d, visible again", instance, id, count, status)
	}
}

// post sends the invocation as the host does and returns the reply's status.
func (h *Host) post(ctx context.Context, base string, payload []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(base, "/")+"/"+h.o.Function, bytes.NewReader(payload))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("X-Azure-Functions-InvocationId", uuid.NewString())
	req.Header.Set("X-Azure-Functions-HostVersion", "4.1037.0")
	req.Header.Set("User-Agent", "Azure-Functions-Host/4.1037.0")
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("invoking %s: %w", h.o.Function, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

func timeStr(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05+00:00")
}

func ptr[T any](v T) *T { return &v }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
