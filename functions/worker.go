package functions

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/usage-export/usage-export/internal/jobs"
	"github.com/usage-export/usage-export/internal/workqueue"
)

// queueMetadata is the Metadata of a queueTrigger invocation (fixture
// queue-invocation-request-docs.json). DequeueCount is a JSON number; a string is accepted too.
type queueMetadata struct {
	DequeueCount    flexInt `json:"DequeueCount"`
	ID              string  `json:"Id"`
	PopReceipt      string  `json:"PopReceipt"`
	InsertionTime   string  `json:"InsertionTime"`
	ExpirationTime  string  `json:"ExpirationTime"`
	NextVisibleTime string  `json:"NextVisibleTime"`
}

// flexInt is an integer sent as a JSON number or a string of one.
type flexInt int

// UnmarshalJSON accepts 3 and "3".
func (n *flexInt) UnmarshalJSON(b []byte) error {
	s := string(bytes.Trim(bytes.TrimSpace(b), `"`))
	if s == "" || s == "null" {
		*n = 0
		return nil
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("not an integer: %s", b)
	}
	*n = flexInt(v)
	return nil
}

// queueMeta decodes the queue trigger's Metadata keys (they sit beside sys).
func (inv *invocation) queueMeta() (queueMetadata, error) {
	var m queueMetadata
	b, err := json.Marshal(inv.Metadata)
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("decoding Metadata: %w", err)
	}
	return m, nil
}

// serveWorker exports the partition of one queue message, synchronously, and answers 200 only
// when the message may be deleted: the partition is final (committed, held, failed for good,
// cancelled) or the message was a duplicate. Otherwise it answers 500 (the error on stderr
// first): the host makes the message visible again, and after maxDequeueCount deliveries moves
// it to the poison queue; the worker has then already recorded the partition as failed.
func (s *Server) serveWorker(w http.ResponseWriter, r *http.Request) {
	ctx, log := s.begin(r, WorkerFunction)
	inv, err := readInvocation(w, r)
	var it workqueue.Item
	var meta queueMetadata
	if err == nil {
		raw, ok := inv.Data[ItemBinding]
		if !ok {
			err = fmt.Errorf("invocation has no Data.%s (the queueTrigger binding must be named %q)", ItemBinding, ItemBinding)
		} else if it, err = workqueue.Decode(raw); err == nil {
			meta, err = inv.queueMeta()
		}
	}
	if err != nil {
		// A message no worker can read: the host retries it and parks it in the poison queue,
		// where an operator sees it.
		s.failed(w, r, WorkerFunction, http.StatusBadRequest, err, nil)
		return
	}
	log = log.With().Str("message_id", meta.ID).Logger()
	ctx = log.WithContext(ctx)
	out := s.jobs.Work(ctx, it, jobs.Delivery{MessageID: meta.ID, DequeueCount: int(meta.DequeueCount)})
	line := fmt.Sprintf("job %s partition %d (%s %s %s), delivery %d: %s", it.Job, it.Index, it.Scope, it.Period, it.Metric, meta.DequeueCount, out.Message)
	if !out.Done {
		s.failed(w, r, WorkerFunction, http.StatusInternalServerError, fmt.Errorf("%s", out.Message), []string{line})
		return
	}
	log.Info().Str("status", string(out.Status)).Msg(out.Message)
	writeJSON(w, http.StatusOK, invokeResponse{Outputs: map[string]any{}, Logs: []string{line}})
}

// failed logs err, writes it to stderr (the host drops a failed reply's body and Logs) and
// answers the host with a non-2xx status.
func (s *Server) failed(w http.ResponseWriter, r *http.Request, function string, status int, err error, logs []string) {
	msg := err.Error()
	if r.Context().Err() != nil {
		// Shutdown (SIGTERM, Ctrl-C): nothing is wrong; the invocation recorded its progress
		// and its message comes back. Said at info, and not on stderr (the host's Error level).
		s.log.Info().Str("function", function).Str("invocation_id", invocationID(r)).Str("reason", msg).
			Msg("invocation interrupted by shutdown; it resumes from its checkpoint")
		writeJSON(w, http.StatusServiceUnavailable, invokeResponse{Outputs: map[string]any{}, Logs: append(logs, "interrupted: "+msg)})
		return
	}
	s.log.Warn().Str("function", function).Str("invocation_id", invocationID(r)).Str("error", msg).Msg("invocation failed")
	fmt.Fprintf(s.errw, "%s invocation %s failed: %s\n", function, invocationID(r), strings.ReplaceAll(msg, "\n", "; "))
	writeJSON(w, status, invokeResponse{Outputs: map[string]any{}, Logs: append(logs, "failed: "+msg)})
}
