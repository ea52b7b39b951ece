package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/usage-export/usage-export/functions"
	"github.com/usage-export/usage-export/internal/export"
)

// Environment the Functions host sets for a custom handler.
const (
	envPort       = "FUNCTIONS_CUSTOMHANDLER_PORT"
	envLegacyPort = "FUNCTIONS_HTTPWORKER_PORT"
	// envInstanceID names the instance on App Service and Flex Consumption.
	envInstanceID = "WEBSITE_INSTANCE_ID"
)

// Server timeouts. There is no WriteTimeout: a timer invocation lasts as long as its export,
// up to host.json's functionTimeout, and the host's own client gives up at functionTimeout + 1 min.
const (
	// readHeaderTimeout and readTimeout bound reading an invocation (at most 1 MiB over loopback).
	readHeaderTimeout = 10 * time.Second
	readTimeout       = time.Minute
	// idleTimeout keeps the host's pooled connection open between invocations and pings.
	idleTimeout = 5 * time.Minute
	// shutdownGrace bounds the wait, after SIGTERM, for the running job and invocations to
	// checkpoint and answer. The platform allows more on scale-in; this keeps a restart quick.
	shutdownGrace = 25 * time.Second
)

// cmdServe runs the custom handler: it listens on 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT before
// any slow start-up, so the host's readiness probe (GET / every 25 ms) is answered at once;
// invocations that arrive before the clients are built wait for them. Settings come only from
// the environment and are checked first: any problem ends the process with one message on
// stderr, which the host shows. On SIGTERM the running job and the in-flight invocations are
// cancelled, checkpoint what they finished and answer (the job stays running in its document
// and is resumed by the next start), then the server stops.
func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 1 && isHelp(args[0]) {
		fmt.Fprintln(stdout, serveUsage)
		return nil
	}
	if len(args) > 0 {
		return exitError{code: exitUsage, msg: "serve takes no arguments: settings come from the environment (app settings)\n\n" + serveUsage}
	}
	port, portErr := listenPort(os.LookupEnv)
	cfg, cfgErr := loadConfig(os.LookupEnv, os.Environ(), true, true)
	if portErr != nil || cfgErr != nil {
		var msgs []string
		for _, err := range []error{portErr, cfgErr} {
			if err != nil {
				msgs = append(msgs, err.Error())
			}
		}
		return exitError{code: exitUsage, msg: "serve: " + strings.Join(msgs, "\n")}
	}
	log := newLogger(stdout, cfg.LogLevel)
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
	log.Info().Str("addr", ln.Addr().String()).Int("scopes", len(cfg.Scopes)).Msg("custom handler listening")

	stopServer := func() error {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
		defer cancel()
		return srv.Shutdown(sctx)
	}
	a, err := newApp(ctx, cfg, log)
	if err != nil {
		_ = stopServer()
		return err
	}
	fs := functions.New(functions.Deps{
		Config: cfg, Export: exportFunc(a), Store: a.store, Logger: log, Errors: os.Stderr,
		Redact: redact, InstanceID: instanceID(),
	})
	runDone := make(chan error, 1)
	go func() { runDone <- fs.Run(ctx) }()
	g.open(fs)
	if n, err := fs.ResumeJobs(log.WithContext(ctx)); err != nil {
		log.Error().Str("error", redact(err.Error())).Msg("checking unfinished jobs at start; the next timer run tries again")
	} else {
		log.Info().Int("jobs", n).Msg("ready")
	}

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		return fmt.Errorf("http server: %w", err)
	}
	log.Info().Msg("shutting down: checkpointing the running job and invocations")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	var errs []error
	if err := fs.Shutdown(sctx); err != nil {
		errs = append(errs, err)
	}
	if err := srv.Shutdown(sctx); err != nil {
		errs = append(errs, fmt.Errorf("stopping the http server: %w", err))
	}
	if err := <-runDone; err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	log.Info().Msg("stopped")
	return nil
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

// instanceID names this machine or container for job ownership.
func instanceID() string {
	if v := strings.TrimSpace(os.Getenv(envInstanceID)); v != "" {
		return v
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "local"
}

// exportFunc runs the functions' exports with the app's clients and store.
func exportFunc(a *app) functions.ExportFunc {
	return func(ctx context.Context, r functions.Run) (*export.Summary, error) {
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
