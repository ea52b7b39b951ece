// Package functions implements the Azure Functions of Usage Export (UsageExportTimer,
// UsageExportHttp, UsageExportWorker) behind the custom-handler protocol.
package functions

import (
	"context"
	"io"
	"net/http"
	"time"

	"github.com/rs/zerolog"

	"github.com/usage-export/usage-export/internal/config"
	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/jobs"
	"github.com/usage-export/usage-export/internal/workqueue"
)

// Function names. Each name is the folder functions/<Name>/function.json, the folder the host
// reads after staging, and the route the host posts invocations to.
const (
	TimerFunction  = "UsageExportTimer"
	HTTPFunction   = "UsageExportHttp"
	WorkerFunction = "UsageExportWorker"
)

// Names lists every function; layout_test.go checks it against the function.json folders.
var Names = []string{TimerFunction, HTTPFunction, WorkerFunction, PartitionsFunction}

// Binding names used in function.json (letters and digits only, as the host requires).
const (
	TimerBinding    = "timer" // timerTrigger input: Data.timer
	RequestBinding  = "req"   // httpTrigger input: Data.req
	ResponseBinding = "res"   // http output: Outputs.res
	ItemBinding     = "item"  // queueTrigger input: Data.item
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

// PoisonDrainer reads the poison queue (workqueue.Queue).
type PoisonDrainer interface {
	DrainPoison(ctx context.Context, max int, fn func(workqueue.Poisoned) error) (int, error)
}

// Deps is what the functions need, built by the handler's wiring.
type Deps struct {
	// Config is the validated configuration; its Scopes are the allow-list of the HTTP function.
	Config *config.Config
	// Jobs plans jobs onto the queue and runs partitions.
	Jobs *jobs.Runner
	// Poison is the poison queue the timer reads; nil skips that step.
	Poison PoisonDrainer
	// Logger is the base logger; each invocation logs through a child of it.
	Logger zerolog.Logger
	// Errors receives one line per failed invocation (the handler's stderr, which the host logs
	// at Error level; the response body of a failed invocation is discarded).
	Errors io.Writer
	// Now is the clock for planning; nil means time.Now.
	Now func() time.Time
	// Inventory answers the partitions API and dry runs (partitions.go); nil answers them 503.
	Inventory Inventory
	// Periods lists a subscription's billing periods (the Billing Periods API, through the
	// billing client's rate budget) for the timer's plan; nil plans calendar months for every
	// scope.
	Periods export.PeriodLister
}

// Server is the http.Handler of the functions. It is safe for concurrent use and keeps no work
// of its own: every invocation's work is done before its reply.
type Server struct {
	cfg    *config.Config
	jobs   *jobs.Runner
	poison PoisonDrainer
	log    zerolog.Logger
	errw   io.Writer
	now    func() time.Time
	inv    Inventory
	bp     export.PeriodLister
	mux    *http.ServeMux
}

// New returns a Server.
func New(d Deps) *Server {
	s := &Server{cfg: d.Config, jobs: d.Jobs, poison: d.Poison, log: d.Logger, errw: d.Errors, now: d.Now, inv: d.Inventory, bp: d.Periods}
	if s.errw == nil {
		s.errw = io.Discard
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /{$}", s.serveReady)
	s.mux.HandleFunc("POST /"+TimerFunction, s.serveTimer)
	s.mux.HandleFunc("POST /"+HTTPFunction, s.serveHTTP)
	s.mux.HandleFunc("POST /"+WorkerFunction, s.serveWorker)
	s.mux.HandleFunc("POST /"+PartitionsFunction, s.servePartitions)
	s.mux.HandleFunc("/", s.serveNotFound)
	return s
}

// ServeHTTP answers the host: GET / (readiness and health), POST /UsageExportTimer,
// POST /UsageExportHttp and POST /UsageExportWorker.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"status":"ready"}`+"\n")
}

func (s *Server) serveNotFound(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusNotFound, errorBody{Error: apiError{
		Code: "not_found", Message: "no function at " + r.Method + " " + r.URL.Path +
			"; the host posts invocations to /" + TimerFunction + ", /" + HTTPFunction + " and /" + WorkerFunction,
	}})
}
