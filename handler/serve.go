package main

import (
	"context"
	"fmt"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/usage-export/usage-export/functions"
	"github.com/usage-export/usage-export/internal/config"
	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/jobs"
	"github.com/usage-export/usage-export/internal/workqueue"
)

// Environment the Functions host sets for a custom handler.
const (
	envPort       = "FUNCTIONS_CUSTOMHANDLER_PORT"
	envLegacyPort = "FUNCTIONS_HTTPWORKER_PORT"
	// envContainerName names the instance on Flex Consumption and Linux Consumption (where
	// WEBSITE_INSTANCE_ID is unset); envInstanceID names it on App Service and Premium.
	envContainerName = "CONTAINER_NAME"
	envInstanceID    = "WEBSITE_INSTANCE_ID"
)

// Server timeouts. There is no WriteTimeout: a worker invocation lasts as long as its partition's
// export, up to host.json's functionTimeout, and the host's own client gives up at
// functionTimeout + 1 min.
const (
	// readHeaderTimeout and readTimeout bound reading an invocation (at most 1 MiB over loopback).
	readHeaderTimeout = 10 * time.Second
	readTimeout       = time.Minute
	// idleTimeout keeps the host's pooled connection open between invocations and pings.
	idleTimeout = 5 * time.Minute
	// shutdownGrace bounds the wait, after SIGTERM, for the in-flight invocations to checkpoint
	// and answer. The Functions host stops the handler with SIGKILL, not SIGTERM; this path
	// serves local runs and the tests.
	shutdownGrace = 25 * time.Second
)

// cmdServe runs the custom handler: it listens on 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT before
// any slow start-up, so the host's readiness probe (GET / every 25 ms) is answered at once;
// invocations that arrive before the clients are built wait for them. Settings come only from
// the environment and are checked first: any problem ends the process with one message on
// stderr, which the host shows. No work runs outside an invocation: every partition is exported
// inside the queue invocation that carries it. On SIGTERM (local runs; the host itself uses
// SIGKILL) the in-flight invocations are cancelled, record what they finished and answer
// non-2xx, so their messages come back; then the server stops.
func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 1 && isHelp(args[0]) {
		fmt.Fprintln(stdout, serveUsage)
		return nil
	}
	if len(args) > 0 {
		return exitError{code: exitUsage, msg: "serve takes no arguments: settings come from the environment (app settings)\n\n" + serveUsage}
	}
	port, cfg, qs, err := serveSettings()
	if err != nil {
		return err
	}
	me := workerIdentity(os.LookupEnv)
	// The host logs every stdout line at Information and stderr lines at Error: error lines go
	// to both, so they keep their JSON fields and still count as errors.
	log := newLogger(errorsToStderr{out: stdout, errw: stderr}, cfg.LogLevel).With().Str("worker", me.String()).Logger()
	warnOverlaps(log, cfg)
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		return fmt.Errorf("listening on 127.0.0.1:%s: %w", port, err)
	}
	g := &gate{ready: make(chan struct{})}
	srv := &http.Server{
		Handler:           g,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		IdleTimeout:       idleTimeout,
		// Invocations are cancelled by SIGTERM through their request context.
		BaseContext: func(net.Listener) context.Context { return ctx },
		ErrorLog:    stdlog.New(serverLog{log}, "", 0),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info().Str("addr", ln.Addr().String()).Int("scopes", len(cfg.Scopes)).Str("queue", qs.Queue).Msg("custom handler listening")

	stopServer := func() error {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
		defer cancel()
		return srv.Shutdown(sctx)
	}
	fs, q, err := newFunctions(ctx, cfg, qs, me, log, stderr)
	if err != nil {
		_ = stopServer()
		return err
	}
	g.open(fs)
	log.Info().Msg("ready")
	// The queues exist on Azure (infra/); a local Azurite starts empty. A failure here is only
	// logged: the timer's and the API's enqueue report it where it matters.
	ectx, ecancel := context.WithTimeout(ctx, 30*time.Second)
	if err := q.Ensure(ectx); err != nil {
		log.Warn().Str("error", err.Error()).Msg("checking the work queues")
	}
	ecancel()

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		return fmt.Errorf("http server: %w", err)
	}
	log.Info().Msg("shutting down: in-flight invocations record their progress and answer")
	if err := stopServer(); err != nil {
		return fmt.Errorf("stopping the http server: %w", err)
	}
	log.Info().Msg("stopped")
	return nil
}

// openQueue returns the work queue client: a connection string as given, or the queue endpoint
// with the managed identity (AzureWebJobsStorage__clientId, else the app's AZURE_CLIENT_ID).
// serveSettings reads the listening port, the configuration and the work queue's settings from
// the environment; every problem with them is in the one usage error.
func serveSettings() (string, *config.Config, workqueue.Settings, error) {
	port, portErr := listenPort(os.LookupEnv)
	cfg, cfgErr := loadConfig(os.LookupEnv, os.Environ(), true, true)
	qs, qErr := workqueue.FromEnv(os.LookupEnv)
	if portErr != nil || cfgErr != nil || qErr != nil {
		var msgs []string
		for _, err := range []error{portErr, cfgErr, qErr} {
			if err != nil {
				msgs = append(msgs, err.Error())
			}
		}
		return "", nil, qs, exitError{code: exitUsage, msg: "serve: " + strings.Join(msgs, "\n")}
	}
	return port, cfg, qs, nil
}

// newFunctions builds the app, opens the work queue and returns the functions' handler on a
// job runner that works as me, and the queue.
func newFunctions(ctx context.Context, cfg *config.Config, qs workqueue.Settings, me jobs.Worker, log zerolog.Logger, stderr io.Writer) (http.Handler, *workqueue.Queue, error) {
	a, err := buildApp(ctx, cfg, log, true)
	if err != nil {
		return nil, nil, err
	}
	q, err := openQueue(qs, cfg, a)
	if err != nil {
		return nil, nil, err
	}
	runner := jobs.NewRunner(jobs.Deps{
		Store: jobs.New(a.store, cfg.Prefix), Queue: q, Export: exportFunc(a), Allowed: cfg.Allowed,
		Worker: me,
	})
	fs := functions.New(functions.Deps{
		Config: cfg, Jobs: runner, Poison: q, Logger: log, Errors: stderr,
		Inventory: newInventory(cfg, a.store),
		// The timer plans a subscription's own billing periods (pay-as-you-go periods are not
		// calendar months) with the same client and rate budget as the exports.
		Periods: a.usage,
	})
	return fs, q, nil
}

func openQueue(qs workqueue.Settings, cfg *config.Config, a *app) (*workqueue.Queue, error) {
	var cred azcore.TokenCredential
	if qs.ConnectionString == "" {
		c := *cfg
		if qs.ClientID != "" {
			c.ClientID = qs.ClientID
		}
		var err error
		if cred, err = azureCredential(&c); err != nil {
			return nil, fmt.Errorf("queue credential: %w", err)
		}
	}
	q, err := workqueue.New(qs, cred, nil)
	if err != nil {
		return nil, err
	}
	return q, nil
}

// workerIdentity names this process: the instance (CONTAINER_NAME on Flex and Linux
// Consumption, else WEBSITE_INSTANCE_ID, else the host name, which can repeat across instances)
// and a random UUID drawn at each start.
func workerIdentity(lookup func(string) (string, bool)) jobs.Worker {
	inst := ""
	for _, k := range []string{envContainerName, envInstanceID} {
		if v, ok := lookup(k); ok && strings.TrimSpace(v) != "" {
			inst = strings.TrimSpace(v)
			break
		}
	}
	if inst == "" {
		if h, err := os.Hostname(); err == nil && h != "" {
			inst = h
		} else {
			inst = "local"
		}
	}
	return jobs.Worker{Instance: inst, Process: uuid.NewString()}
}

const serveUsage = `usage: handler [serve]

Run as the Azure Functions custom handler on 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT. Settings come
only from the environment (the app settings, USAGE_EXPORT_*; see the README's Configuration).`

// listenPort returns the port the host gave (the legacy name as a fallback).
func listenPort(lookup func(string) (string, bool)) (string, error) {
	for _, k := range []string{envPort, envLegacyPort} {
		v, ok := lookup(k)
		if !ok || strings.TrimSpace(v) == "" {
			continue
		}
		v = strings.TrimSpace(v)
		if n, err := strconv.Atoi(v); err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("%s: %q is not a TCP port", k, v)
		}
		return v, nil
	}
	return "", fmt.Errorf("%s is not set: the Functions host sets it when it starts the handler; to run the handler by hand, set it to a free port", envPort)
}

// exportFunc runs the functions' exports with the app's clients and store.
func exportFunc(a *app) jobs.ExportFunc {
	return func(ctx context.Context, r jobs.Run) (*export.Summary, error) {
		run := *a // per-run source override; the clients and store are shared
		run.forceSource = r.Source
		return run.exporter(r.ExecutionType, r.Progress, r.Force).Run(ctx, r.Partitions)
	}
}

// gate answers the host's readiness probe from the first moment and holds every other request
// until the functions are built.
type gate struct {
	ready chan struct{}
	h     http.Handler
}

func (g *gate) open(h http.Handler) {
	g.h = h
	close(g.ready)
}

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		w.Header().Set("Content-Type", "application/json")
		state := "ready"
		select {
		case <-g.ready:
		default:
			state = "starting"
		}
		_, _ = io.WriteString(w, `{"status":"`+state+`"}`+"\n")
		return
	}
	select {
	case <-g.ready:
		g.h.ServeHTTP(w, r)
	case <-r.Context().Done():
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
	}
}

// serverLog turns net/http's own error lines into warnings of the JSON log.
type serverLog struct{ log zerolog.Logger }

func (s serverLog) Write(p []byte) (int, error) {
	s.log.Warn().Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}

// errorsToStderr writes every log line to out and lines at error level or above to errw too.
type errorsToStderr struct{ out, errw io.Writer }

func (w errorsToStderr) Write(p []byte) (int, error) { return w.out.Write(p) }

// WriteLevel implements zerolog.LevelWriter.
func (w errorsToStderr) WriteLevel(l zerolog.Level, p []byte) (int, error) {
	if l >= zerolog.ErrorLevel && l < zerolog.NoLevel {
		_, _ = w.errw.Write(p)
	}
	return w.out.Write(p)
}
