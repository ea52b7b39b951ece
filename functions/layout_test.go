package functions

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/usage-export/usage-export/internal/workqueue"
)

// Host rules (Azure/azure-functions-host src/WebJobs.Script/Utility.cs): function names and
// binding names.
var (
	functionNameRE = regexp.MustCompile(`(?i)^[a-z][a-z0-9_\-]{0,127}$`)
	bindingNameRE  = regexp.MustCompile(`^([a-zA-Z][a-zA-Z0-9]{0,127}|\$return)$`)
)

type functionJSON struct {
	Bindings []map[string]any `json:"bindings"`
	Retry    *struct {
		Strategy        string `json:"strategy"`
		MaxRetryCount   int    `json:"maxRetryCount"`
		MinimumInterval string `json:"minimumInterval"`
		MaximumInterval string `json:"maximumInterval"`
	} `json:"retry"`
}

func readFunctionJSON(t *testing.T, name string) functionJSON {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(name, "function.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f functionJSON
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("%s/function.json: %v", name, err)
	}
	return f
}

// TestEveryFolderHasARouteAndEveryRouteAFolder checks the one-constant rule: a function's name
// is its folder and its route.
func TestEveryFolderHasARouteAndEveryRouteAFolder(t *testing.T) {
	matches, err := filepath.Glob("*/function.json")
	if err != nil {
		t.Fatal(err)
	}
	var folders []string
	for _, m := range matches {
		folders = append(folders, filepath.Dir(m))
	}
	slices.Sort(folders)
	names := slices.Clone(Names)
	slices.Sort(names)
	if !slices.Equal(folders, names) {
		t.Fatalf("function.json folders %v, function names %v: want the same", folders, names)
	}
	s, _, _ := newTestServer(t, nil)
	for _, name := range Names {
		if !functionNameRE.MatchString(name) || strings.EqualFold(name, "host") {
			t.Errorf("%q is not a valid function name for the host", name)
		}
		rec := invoke(t, s, "/"+name, []byte(`{}`), "")
		if rec.Code == 404 {
			t.Errorf("POST /%s: 404, want a route", name)
		}
		for _, b := range readFunctionJSON(t, name).Bindings {
			n, _ := b["name"].(string)
			if !bindingNameRE.MatchString(n) {
				t.Errorf("%s: binding name %q is invalid for the host (letters and digits only)", name, n)
			}
		}
	}
}

func TestTimerFunctionJSON(t *testing.T) {
	f := readFunctionJSON(t, TimerFunction)
	if len(f.Bindings) != 1 {
		t.Fatalf("bindings: %d, want 1", len(f.Bindings))
	}
	b := f.Bindings[0]
	want := map[string]any{"name": TimerBinding, "type": "timerTrigger", "direction": "in",
		"schedule": "%USAGE_EXPORT_SCHEDULE%", "runOnStartup": false, "useMonitor": true}
	for k, v := range want {
		if b[k] != v {
			t.Errorf("timer binding %s = %v, want %v", k, b[k], v)
		}
	}
	if f.Retry == nil || f.Retry.Strategy != "exponentialBackoff" || f.Retry.MaxRetryCount != 3 ||
		f.Retry.MinimumInterval != "00:01:00" || f.Retry.MaximumInterval != "00:15:00" {
		t.Errorf("retry = %+v, want exponentialBackoff 3 × 00:01:00..00:15:00", f.Retry)
	}
}

func TestHTTPFunctionJSON(t *testing.T) {
	f := readFunctionJSON(t, HTTPFunction)
	if len(f.Bindings) != 2 {
		t.Fatalf("bindings: %d, want 2 (httpTrigger in, http out)", len(f.Bindings))
	}
	in, out := f.Bindings[0], f.Bindings[1]
	for k, v := range map[string]any{"name": RequestBinding, "type": "httpTrigger", "direction": "in",
		"authLevel": "function", "route": "exports/{id?}"} {
		if in[k] != v {
			t.Errorf("trigger %s = %v, want %v", k, in[k], v)
		}
	}
	methods, _ := in["methods"].([]any)
	if len(methods) != 3 || methods[0] != "get" || methods[1] != "post" || methods[2] != "delete" {
		t.Errorf("methods = %v, want [get post delete]", methods)
	}
	for k, v := range map[string]any{"name": ResponseBinding, "type": "http", "direction": "out"} {
		if out[k] != v {
			t.Errorf("output %s = %v, want %v", k, out[k], v)
		}
	}
	if f.Retry != nil {
		t.Error("retry on an HTTP function: the host does not apply it")
	}
}

// TestWorkerFunctionJSON: the queue trigger reads the work queue named by the app setting the
// handler enqueues to, with the host storage's identity-based connection.
func TestWorkerFunctionJSON(t *testing.T) {
	f := readFunctionJSON(t, WorkerFunction)
	if len(f.Bindings) != 1 {
		t.Fatalf("bindings: %d, want 1 (queueTrigger in)", len(f.Bindings))
	}
	for k, v := range map[string]any{"name": ItemBinding, "type": "queueTrigger", "direction": "in",
		"queueName": "%" + workqueue.EnvQueue + "%", "connection": workqueue.EnvConnection} {
		if f.Bindings[0][k] != v {
			t.Errorf("trigger %s = %v, want %v", k, f.Bindings[0][k], v)
		}
	}
	if f.Retry != nil {
		t.Error("retry on the queue function: the queue's own redelivery is the retry")
	}
}

func TestHostJSON(t *testing.T) {
	b, err := os.ReadFile("../host.json")
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Version       string `json:"version"`
		CustomHandler struct {
			Description struct {
				DefaultExecutablePath string `json:"defaultExecutablePath"`
			} `json:"description"`
			EnableForwardingHTTPRequest bool `json:"enableForwardingHttpRequest"`
		} `json:"customHandler"`
		ExtensionBundle struct {
			ID      string `json:"id"`
			Version string `json:"version"`
		} `json:"extensionBundle"`
		FunctionTimeout string `json:"functionTimeout"`
		Extensions      struct {
			Queues struct {
				BatchSize         int    `json:"batchSize"`
				NewBatchThreshold int    `json:"newBatchThreshold"`
				MaxDequeueCount   int    `json:"maxDequeueCount"`
				VisibilityTimeout string `json:"visibilityTimeout"`
				MessageEncoding   string `json:"messageEncoding"`
			} `json:"queues"`
		} `json:"extensions"`
		Logging struct {
			LogLevel map[string]string `json:"logLevel"`
		} `json:"logging"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	checks := []struct{ name, got, want string }{
		{"version", h.Version, "2.0"},
		{"defaultExecutablePath", h.CustomHandler.Description.DefaultExecutablePath, "handler"},
		{"enableForwardingHttpRequest", strconv.FormatBool(h.CustomHandler.EnableForwardingHTTPRequest), "false"},
		{"extensionBundle.id", h.ExtensionBundle.ID, "Microsoft.Azure.Functions.ExtensionBundle"},
		{"extensionBundle.version", h.ExtensionBundle.Version, "[4.*, 5.0.0)"},
		// Within the 60-minute scale-in grace of Flex Consumption; a longer partition resumes
		// from its checkpoint on the next delivery.
		{"functionTimeout", h.FunctionTimeout, "00:30:00"},
		// The worker records a partition failed on this delivery (workqueue.MaxDequeueCount).
		{"extensions.queues.maxDequeueCount", strconv.Itoa(h.Extensions.Queues.MaxDequeueCount), strconv.Itoa(workqueue.MaxDequeueCount)},
		// workqueue.Encode writes base64, which the trigger decodes by default.
		{"extensions.queues.messageEncoding", h.Extensions.Queues.MessageEncoding, "base64"},
		{"extensions.queues.batchSize", strconv.Itoa(h.Extensions.Queues.BatchSize), "4"},
		{"extensions.queues.newBatchThreshold", strconv.Itoa(h.Extensions.Queues.NewBatchThreshold), "2"},
		{"extensions.queues.visibilityTimeout", h.Extensions.Queues.VisibilityTimeout, "00:00:30"},
		{"logging.logLevel.default", h.Logging.LogLevel["default"], "Information"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("host.json %s = %q, want %q", c.name, c.got, c.want)
		}
	}
}

// TestLocalSettingsExample checks that local.settings.json.example lists every setting that
// internal/config reads, with string values only (Core Tools refuses others).
func TestLocalSettingsExample(t *testing.T) {
	b, err := os.ReadFile("../local.settings.json.example")
	if err != nil {
		t.Fatal(err)
	}
	var ls struct {
		IsEncrypted bool                       `json:"IsEncrypted"`
		Values      map[string]json.RawMessage `json:"Values"`
	}
	if err := json.Unmarshal(b, &ls); err != nil {
		t.Fatal(err)
	}
	for k, v := range ls.Values {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			t.Errorf("Values.%s is not a string", k)
		}
		if strings.Contains(k, "__") || strings.Contains(k, ":") {
			t.Errorf("Values.%s: '__' and ':' are reserved in setting names", k)
		}
	}
	for _, k := range []string{"FUNCTIONS_WORKER_RUNTIME", "AzureWebJobsStorage", workqueue.EnvQueue} {
		if _, ok := ls.Values[k]; !ok {
			t.Errorf("Values.%s missing", k)
		}
	}
	settings := configSettings(t)
	if len(settings) < 20 {
		t.Fatalf("found %d settings in internal/config; the parser missed them", len(settings))
	}
	for _, name := range settings {
		if _, ok := ls.Values[name]; !ok {
			t.Errorf("setting %s (internal/config) is missing from local.settings.json.example", name)
		}
	}
}

// configSettings returns the values of the Env* constants of internal/config.
func configSettings(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../internal/config/config.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok {
			return true
		}
		for i, id := range vs.Names {
			if !strings.HasPrefix(id.Name, "Env") || i >= len(vs.Values) {
				continue
			}
			if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
				v, _ := strconv.Unquote(lit.Value)
				out = append(out, v)
			}
		}
		return true
	})
	return out
}
