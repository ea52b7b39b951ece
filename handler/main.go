// Command handler is Usage Export: the Azure Functions custom handler and the command-line tool.
//
// Usage:
//
//	handler                     serve the Functions host (FUNCTIONS_CUSTOMHANDLER_PORT)
//	handler serve               the same, explicitly
//	handler export [flags]      export scopes × billing periods once
//	handler sandbox [flags]     run the API sandbox and print its endpoint and token
//	handler verify [flags] DIR  check a partition against its manifest
//	handler plan [flags]        what an export would do (no API call)
//	handler status [flags]      what has been exported, held runs, unfinished runs
//	handler publish|discard ID  act on a run the drop guard held back
//	handler clean [flags]       remove expired held and abandoned run folders
//	handler demo                sandbox + Azurite + the app driven like the Functions host
//
// Settings come from the environment (the app settings); every flag has an environment twin.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/usage-export/usage-export/internal/redact"
)

// Exit codes a script can rely on.
const (
	exitOK       = 0 // everything committed
	exitFailed   = 1 // a partition or the run failed
	exitUsage    = 2 // bad flags or settings
	exitAttended = 3 // nothing failed, but a partition was held by the drop guard or busy
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	cmd := "serve"
	switch {
	case len(args) > 0 && isHelp(args[0]):
		cmd, args = "help", args[1:]
	case len(args) > 0 && args[0] != "" && args[0][0] != '-':
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = cmdServe(ctx, args, stdout, stderr)
	case "export":
		err = cmdExport(ctx, args, stdout, stderr)
	case "sandbox":
		err = cmdSandbox(ctx, args, stdout, stderr)
	case "verify":
		err = cmdVerify(ctx, args, stdout, stderr)
	case "plan":
		err = cmdPlan(ctx, args, stdout, stderr)
	case "status":
		err = cmdStatus(ctx, args, stdout, stderr)
	case "publish", "discard":
		err = cmdHeld(ctx, cmd, args, stdout, stderr)
	case "clean":
		err = cmdClean(ctx, args, stdout, stderr)
	case "demo":
		err = cmdDemo(ctx, args, stdout, stderr)
	case "help":
		fmt.Fprintln(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "unknown command %q\n\n%s\n", cmd, usage)
		return exitUsage
	}
	var ec exitError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ec):
		if ec.msg != "" {
			fmt.Fprintln(stderr, redact.String(ec.msg))
		}
		return ec.code
	default:
		fmt.Fprintln(stderr, "error:", redact.String(err.Error()))
		return exitFailed
	}
}

const usage = `usage: handler [serve|export|plan|status|publish|discard|clean|sandbox|verify|demo] [flags]
  serve     run as the Azure Functions custom handler (default; needs FUNCTIONS_CUSTOMHANDLER_PORT)
  export    export scopes × billing periods once (handler export -h for flags)
  plan      show what export with the same flags would do: partitions, sources, calls, time
  status    show what has been exported: per partition rows, totals, age, held and unfinished runs
  publish   publish a run the drop guard held back (handler publish RUN_ID)
  discard   discard a held run (handler discard RUN_ID)
  clean     remove expired held and abandoned run folders
  sandbox   run the API sandbox on loopback and print its endpoint and token
  verify    re-read a partition and check it against its _manifest.json
  demo      start the sandbox and Azurite, run the app as the Functions host would, print the result

handler COMMAND -h shows a command's flags. Every setting flag has an environment twin (the app
setting, e.g. --api-version ↔ USAGE_EXPORT_API_VERSION); a flag given wins over the environment.`

// exitError carries an exit code through an error return.
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

// newLogger returns the JSON logger (stdout for the Functions host, which captures it; stderr
// for the CLI, whose stdout is the run summary). On a terminal the CLI logs in console format.
func newLogger(w io.Writer, level string) zerolog.Logger {
	f, ok := w.(*os.File)
	return newLoggerTo(w, ok && isatty.IsTerminal(f.Fd()), level)
}

// newLoggerTo returns the logger writing to w, in console format when console is set (a
// terminal, possibly behind the progress screen).
func newLoggerTo(w io.Writer, console bool, level string) zerolog.Logger {
	lv, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		lv = zerolog.InfoLevel
	}
	zerolog.TimeFieldFormat = "2006-01-02T15:04:05.000Z07:00"
	if console {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05"}
	}
	// Every log line goes through redact.Writer: no call site has to remember secrets.
	return zerolog.New(redact.Writer(w)).Level(lv).With().Timestamp().Logger()
}
