// Package functions implements the Azure Functions of Usage Export behind the custom-handler
// protocol: UsageExportTimer (the scheduled export) and UsageExportHttp (on-demand export jobs
// that outlive the HTTP request), each answering the host's {Data, Metadata} invocation at
// POST /<FunctionName>. The Go code lives here; functions/<FunctionName>/function.json holds
// each function's bindings, and `make stage` lays both out the way the host reads them.
package functions

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/usage-export/usage-export/internal/config"
	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/jobs"
)

// Function names. Each name is the folder functions/<Name>/function.json, the folder the host
// reads after staging, and the route the host posts invocations to.
const (
	TimerFunction = "UsageExportTimer"
	HTTPFunction  = "UsageExportHttp"
)

// Names lists every function; functions_test.go checks it against the function.json folders.
var Names = []string{TimerFunction, HTTPFunction}

// Binding names used in function.json (letters and digits only, as the host requires).
const (
	TimerBinding    = "timer" // timerTrigger input: Data.timer
	RequestBinding  = "req"   // httpTrigger input: Data.req
	ResponseBinding = "res"   // http output: Outputs.res
)

// Execution types recorded in manifests.
const (
	ExecScheduled = "Scheduled"
	ExecOnDemand  = "OnDemand"
)

// Limits on what the handler reads.
const (
	// maxInvocationBytes bounds the host's invocation payload. The HTTP body inside it is
	// limited separately (maxRequestBodyBytes); the rest is headers and identities.
	maxInvocationBytes = 1 << 20
	// maxRequestBodyBytes bounds the on-demand request body (a few scopes and periods fit in a
	// few KiB).
	maxRequestBodyBytes = 64 << 10
)

// Run is one export the functions ask for.
type Run struct {
	// ExecutionType is ExecScheduled (timer) or ExecOnDemand (jobs).
	ExecutionType string
	Partitions    []export.Partition
	// Source forces usageDetails or costDetails for every scope; empty means per scope from the
	// settings.
	Source string
	// Force publishes even when the drop guard would hold an export back.
	Force bool
	// Progress, when set, receives the exporter's progress; it does not block.
	Progress func(export.Progress)
}

// ExportFunc runs an export and returns its summary. Its error is non-nil only when ctx ended
// the run (partition failures are in the summary), as with export.Exporter.Run.
type ExportFunc func(ctx context.Context, r Run) (*export.Summary, error)

// Options tune the job runner. Zero fields get the documented defaults.
type Options struct {
	// FlushInterval is how often a running job's progress is saved (default 2 s).
	FlushInterval time.Duration
	// HeartbeatInterval is how often a running job is saved even without progress, to show
	// its worker is alive (default 30 s).
	HeartbeatInterval time.Duration
	// StaleAfter is how old a heartbeat of a worker on another instance must be before that
	// worker's job is taken over (default 3 min).
	StaleAfter time.Duration
	// BusyRetryInterval and BusyRetryFor: a partition that another writer holds is tried again
	// every BusyRetryInterval for up to BusyRetryFor (defaults 5 s and 5 min; a dead writer's
	// partition lease expires within 60 s).
	BusyRetryInterval time.Duration
	BusyRetryFor      time.Duration
	// MaxAttempts is how many times a job is claimed before it is failed (default 5): a job
	// that keeps killing its process must not be resumed forever.
	MaxAttempts int
	// Retention is how long finished jobs are kept (default 30 days).
	Retention time.Duration
}

// Defaults of Options.
const (
	DefaultFlushInterval     = 2 * time.Second
	DefaultHeartbeatInterval = 30 * time.Second
	DefaultStaleAfter        = 3 * time.Minute
	DefaultBusyRetryInterval = 5 * time.Second
	DefaultBusyRetryFor      = 5 * time.Minute
	DefaultMaxAttempts       = 5
	DefaultRetention         = 30 * 24 * time.Hour
)

func (o *Options) withDefaults() Options {
	var c Options
	if o != nil {
		c = *o
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.FlushInterval, DefaultFlushInterval)
	def(&c.HeartbeatInterval, DefaultHeartbeatInterval)
	def(&c.StaleAfter, DefaultStaleAfter)
	def(&c.BusyRetryInterval, DefaultBusyRetryInterval)
	def(&c.BusyRetryFor, DefaultBusyRetryFor)
	def(&c.Retention, DefaultRetention)
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	return c
}

// Deps is what the functions need, built by the handler's wiring.
type Deps struct {
	// Config is the validated configuration; its Scopes are the allow-list of the HTTP function.
	Config *config.Config
	// Export runs exports.
	Export ExportFunc
	// Store keeps the job documents (the output store: jobs live under
	// {prefix}/_control/jobs/).
	Store jobs.Backend
	// Logger is the base logger; each invocation and job logs through a child of it.
	Logger zerolog.Logger
	// Errors receives one line per failed timer invocation (the handler's stderr, which the
	// host logs at Error level; the response body of a failed invocation is discarded).
	Errors io.Writer
	// Redact removes secrets from error text before it is logged or returned; nil keeps text.
	Redact func(string) string
	// Now is the clock for planning and job times; nil means time.Now.
	Now func() time.Time
	// InstanceID names the machine or container (WEBSITE_INSTANCE_ID on Azure, else the host
	// name). Jobs left running by another process of the same instance are resumed at once.
	InstanceID string
	// Options tune the job runner; nil means defaults.
	Options *Options
}

// Server is the http.Handler of the functions. It is safe for concurrent use; jobs run one at
// a time in Run.
type Server struct {
	cfg    *config.Config
	export ExportFunc
	jobs   *jobs.Store
	log    zerolog.Logger
	errw   io.Writer
	redact func(string) string
	now    func() time.Time
	me     jobs.Worker
	opts   Options
	mux    *http.ServeMux

	q queue
}

// queue holds the ids of jobs waiting for Run in this process.
type queue struct {
	mu      sync.Mutex
	ids     []string
	known   map[string]bool // queued or running here
	wake    chan struct{}
	started bool
	stop    context.CancelFunc
	done    chan struct{}
}

// New returns a Server.
func New(d Deps) *Server {
	s := &Server{
		cfg: d.Config, export: d.Export, jobs: jobs.New(d.Store, d.Config.Prefix), log: d.Logger,
		errw: d.Errors, redact: d.Redact, now: d.Now, opts: d.Options.withDefaults(),
		me: jobs.Worker{Instance: d.InstanceID, Process: newProcessID()},
	}
	if s.errw == nil {
		s.errw = io.Discard
	}
	if s.redact == nil {
		s.redact = func(s string) string { return s }
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.q.known = map[string]bool{}
	s.q.wake = make(chan struct{}, 1)
	s.q.done = make(chan struct{})
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /{$}", s.serveReady)
	s.mux.HandleFunc("POST /"+TimerFunction, s.serveTimer)
	s.mux.HandleFunc("POST /"+HTTPFunction, s.serveHTTP)
	s.mux.HandleFunc("/", s.serveNotFound)
	return s
}

func newProcessID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ServeHTTP answers the host: GET / (readiness and health), POST /UsageExportTimer and
// POST /UsageExportHttp.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"status":"ready"}`+"\n")
}

func (s *Server) serveNotFound(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusNotFound, errorBody{Error: apiError{
		Code: "not_found", Message: "no function at " + r.Method + " " + r.URL.Path +
			"; the host posts invocations to /" + TimerFunction + " and /" + HTTPFunction,
	}})
}
