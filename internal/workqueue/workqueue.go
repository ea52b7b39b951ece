// Package workqueue carries partition work items on a Storage queue: the message, its text
// encoding (base64 of JSON, which the queue trigger decodes by default) and the queue client
// (azqueue, with the managed identity on Azure or a connection string locally).
package workqueue

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/queueerror"
	"golang.org/x/sync/errgroup"

	"github.com/usage-export/usage-export/internal/metric"
)

// DefaultQueue is the work queue's name when USAGE_EXPORT_QUEUE is not set. The worker's
// function.json names the queue "%USAGE_EXPORT_QUEUE%", so the app setting must hold the same
// name (infra/ sets it).
const DefaultQueue = "usage-export-partitions"

// PoisonSuffix is what the queue extension appends to a queue's name for messages past
// maxDequeueCount.
const PoisonSuffix = "-poison"

// MaxDequeueCount is host.json's extensions.queues.maxDequeueCount: the delivery after which the
// host moves a message to the poison queue. The worker records the partition as failed on that
// delivery. functions' layout test holds host.json to it.
const MaxDequeueCount = 5

// Version is the message format; a worker refuses messages of another version.
const Version = 1

// Item is one work item: one partition (scope × billing period × metric) of one job.
type Item struct {
	Version int    `json:"v"`
	Job     string `json:"job"`
	// Index is the partition's position in the job's plan.
	Index  int           `json:"index"`
	Scope  string        `json:"scope"`
	Period string        `json:"billingPeriod"`
	Metric metric.Metric `json:"metric"`
}

// Encode returns the message text of it: base64 of its JSON, as the queue trigger's default
// messageEncoding expects.
func Encode(it Item) string {
	it.Version = Version
	b, _ := json.Marshal(it) // strings and ints only
	return base64.StdEncoding.EncodeToString(b)
}

// maxItemBytes bounds a decoded message (a scope path and a few short fields).
const maxItemBytes = 16 << 10

// Decode reads a work item from what the host passes in Data.<binding>: the message text as a
// JSON string (the host has already removed the base64 layer), or the message's JSON value
// itself. Text that is still base64 (a queue with messageEncoding "none") is accepted too.
func Decode(raw json.RawMessage) (Item, error) {
	var it Item
	b := bytes.TrimSpace(raw)
	if len(b) == 0 || bytes.Equal(b, []byte("null")) {
		return it, errors.New("work item: empty message")
	}
	if len(b) > maxItemBytes {
		return it, fmt.Errorf("work item: %d bytes, more than %d", len(b), maxItemBytes)
	}
	if b[0] == '"' {
		var text string
		if err := json.Unmarshal(b, &text); err != nil {
			return it, fmt.Errorf("work item: message text: %w", err)
		}
		b = bytes.TrimSpace([]byte(text))
		if len(b) > 0 && b[0] != '{' {
			dec, err := base64.StdEncoding.DecodeString(string(b))
			if err != nil {
				return it, fmt.Errorf("work item: message text is neither a JSON object nor base64 of one: %.60q", text)
			}
			b = dec
		}
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&it); err != nil {
		return it, fmt.Errorf("work item: %w", err)
	}
	switch {
	case it.Version != Version:
		return it, fmt.Errorf("work item: version %d, this worker reads version %d", it.Version, Version)
	case it.Job == "" || it.Scope == "" || it.Period == "" || it.Metric == "" || it.Index < 0:
		return it, errors.New("work item: job, index, scope, billingPeriod and metric are required")
	}
	return it, nil
}

// Connection settings of the host storage account (AzureWebJobsStorage), which the queue
// trigger's "connection": "AzureWebJobsStorage" reads too, so enqueuer and trigger meet on
// the same queue by construction.
const (
	EnvConnection      = "AzureWebJobsStorage"
	EnvQueueServiceURI = "AzureWebJobsStorage__queueServiceUri"
	EnvAccountName     = "AzureWebJobsStorage__accountName"
	EnvClientID        = "AzureWebJobsStorage__clientId"
	// EnvQueue names the work queue (default DefaultQueue); a row of config's settings table.
	EnvQueue = "USAGE_EXPORT_QUEUE"
)

// Settings say where the queue is.
type Settings struct {
	// ConnectionString is a connection string (Azurite locally); a secret, never logged.
	ConnectionString string
	// ServiceURL is the queue endpoint, https://<account>.queue.core.windows.net, reached with
	// the managed identity.
	ServiceURL string
	// ClientID is the user-assigned identity's client id (empty: system-assigned or default).
	ClientID string
	// Queue is the work queue's name.
	Queue string
}

// FromEnv reads the settings the Functions host uses for its own storage: a connection string
// in AzureWebJobsStorage, or the identity-based AzureWebJobsStorage__queueServiceUri /
// __accountName (+ __clientId). UseDevelopmentStorage=true means Azurite's default ports.
func FromEnv(lookup func(string) (string, bool)) (Settings, error) {
	get := func(k string) string {
		v, _ := lookup(k)
		return strings.TrimSpace(v)
	}
	s := Settings{Queue: get(EnvQueue), ClientID: get(EnvClientID)}
	if s.Queue == "" {
		s.Queue = DefaultQueue
	}
	if err := validName(s.Queue); err != nil {
		return s, fmt.Errorf("%s: %w", EnvQueue, err)
	}
	switch cs, svc, acct := get(EnvConnection), get(EnvQueueServiceURI), get(EnvAccountName); {
	case strings.EqualFold(strings.TrimSuffix(cs, ";"), "UseDevelopmentStorage=true"):
		s.ConnectionString = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
	case cs != "":
		s.ConnectionString = cs
	case svc != "":
		u, err := url.Parse(svc)
		if err != nil || u.Host == "" || (u.Scheme != "https" && u.Hostname() != "127.0.0.1" && u.Hostname() != "localhost") {
			return s, fmt.Errorf("%s: %q is not an https queue endpoint like https://<account>.queue.core.windows.net", EnvQueueServiceURI, svc)
		}
		s.ServiceURL = strings.TrimSuffix(svc, "/")
	case acct != "":
		s.ServiceURL = "https://" + acct + ".queue.core.windows.net"
	default:
		return s, fmt.Errorf("no queue connection: set %s (a connection string) or %s / %s (identity-based)",
			EnvConnection, EnvQueueServiceURI, EnvAccountName)
	}
	return s, nil
}

// validName checks a queue name: 3–63 lower-case letters, digits and single hyphens, room left
// for the poison suffix.
func validName(n string) error {
	if len(n) < 3 || len(n)+len(PoisonSuffix) > 63 {
		return fmt.Errorf("queue name %q: want 3 to %d characters", n, 63-len(PoisonSuffix))
	}
	for i, r := range n {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' && i > 0 && i < len(n)-1 && n[i-1] != '-'
		if !ok {
			return fmt.Errorf("queue name %q: lower-case letters, digits and single inner hyphens only", n)
		}
	}
	return nil
}

// Queue is the work queue and its poison queue.
type Queue struct {
	work   *azqueue.QueueClient
	poison *azqueue.QueueClient
	name   string
}

// New returns the client of the queue the settings name. cred is used with ServiceURL (the
// managed identity); o may be nil.
func New(s Settings, cred azcore.TokenCredential, o *azqueue.ClientOptions) (*Queue, error) {
	if err := validName(s.Queue); err != nil {
		return nil, err
	}
	var svc *azqueue.ServiceClient
	var err error
	switch {
	case s.ConnectionString != "":
		svc, err = azqueue.NewServiceClientFromConnectionString(s.ConnectionString, o)
	case s.ServiceURL != "" && cred != nil:
		svc, err = azqueue.NewServiceClient(s.ServiceURL+"/", cred, o)
	default:
		return nil, errors.New("work queue: no connection string, or no credential for the queue endpoint")
	}
	if err != nil {
		return nil, fmt.Errorf("work queue client: %w", err)
	}
	return &Queue{work: svc.NewQueueClient(s.Queue), poison: svc.NewQueueClient(s.Queue + PoisonSuffix), name: s.Queue}, nil
}

// Name returns the work queue's name.
func (q *Queue) Name() string { return q.name }

// Work returns the work queue's client.
func (q *Queue) Work() *azqueue.QueueClient { return q.work }

// Poison returns the poison queue's client.
func (q *Queue) Poison() *azqueue.QueueClient { return q.poison }

// Ensure creates the work and poison queues when they do not exist (infra/ creates them on
// Azure; Azurite starts empty).
func (q *Queue) Ensure(ctx context.Context) error {
	for _, c := range []*azqueue.QueueClient{q.work, q.poison} {
		if _, err := c.Create(ctx, nil); err != nil && !queueerror.HasCode(err, queueerror.QueueAlreadyExists) {
			return fmt.Errorf("creating queue: %w", err)
		}
	}
	return nil
}

// enqueueConcurrency bounds the puts in flight (a 36-month, many-scope job is a few hundred).
const enqueueConcurrency = 8

// ttlForever keeps a message until a worker deletes it (the default is 7 days, after which an
// unprocessed partition would vanish without a trace).
var ttlForever = int32(-1)

// Enqueue puts one message per item. It returns the first error; items already put stay put
// (a worker skips a partition that is already final, so putting them again is harmless).
func (q *Queue) Enqueue(ctx context.Context, items []Item) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(enqueueConcurrency)
	for _, it := range items {
		g.Go(func() error {
			if _, err := q.work.EnqueueMessage(ctx, Encode(it), &azqueue.EnqueueMessageOptions{TimeToLive: &ttlForever}); err != nil {
				return fmt.Errorf("enqueueing job %s partition %d: %w", it.Job, it.Index, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// Poisoned is a message of the poison queue.
type Poisoned struct {
	Item Item
	// Err is set when the message could not be decoded (it is deleted all the same).
	Err error
	// Text is the raw message text, for the log when Err is set.
	Text string
}

// drainVisibility hides the poison messages being handled for this long.
const drainVisibility = int32(60)

// DrainPoison reads up to max poison messages, calls fn for each and deletes those fn accepted
// (nil error). It returns how many were deleted.
func (q *Queue) DrainPoison(ctx context.Context, max int, fn func(Poisoned) error) (int, error) {
	n := 0
	for n < max {
		batch := int32(min(32, max-n))
		resp, err := q.poison.DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{NumberOfMessages: &batch, VisibilityTimeout: ptr(drainVisibility)})
		if queueerror.HasCode(err, queueerror.QueueNotFound) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("reading the poison queue: %w", err)
		}
		if len(resp.Messages) == 0 {
			return n, nil
		}
		for _, m := range resp.Messages {
			text := deref(m.MessageText)
			p := Poisoned{Text: text}
			raw, _ := json.Marshal(text)
			p.Item, p.Err = Decode(raw)
			if err := fn(p); err != nil {
				return n, err
			}
			if _, err := q.poison.DeleteMessage(ctx, deref(m.MessageID), deref(m.PopReceipt), nil); err != nil {
				return n, fmt.Errorf("deleting a poison message: %w", err)
			}
			n++
		}
	}
	return n, nil
}

func ptr[T any](v T) *T { return &v }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
