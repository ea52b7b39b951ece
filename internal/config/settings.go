package config

import (
	"fmt"
	"slices"
	"strings"

	"github.com/agext/levenshtein"
)

// Prefix starts the name of every Usage Export setting; an environment variable with this prefix
// that is not in Settings is an error (a misspelt setting would otherwise be ignored in silence).
const Prefix = "USAGE_EXPORT_"

// EnvAllowCustomEndpoint opts in to a management endpoint outside ManagementHosts and loopback:
// bearer tokens go to the endpoint, so a typo or a hostile value must not be taken in silence.
const EnvAllowCustomEndpoint = "USAGE_EXPORT_ALLOW_CUSTOM_ENDPOINT"

// toolNames are USAGE_EXPORT_* variables of the project's own tooling (tests, make targets), not
// settings; UnknownNames lets them pass.
var toolNames = []string{"USAGE_EXPORT_FAULTS", "USAGE_EXPORT_TEST_AZURITE_CONNECTION", "USAGE_EXPORT_TOOLS_CACHE"}

// Use says which commands take a setting as a flag.
type Use uint8

const (
	// UseStore settings address the output and the logs: every command that reads or writes it
	// (export, plan, status, verify).
	UseStore Use = 1 << iota
	// UseRun settings shape an export: the commands that run or plan one (export, plan).
	UseRun
)

// Setting describes one app setting. Adding a setting means adding its Env constant and one row
// to Settings (TestEverySettingInTable holds the two together).
type Setting struct {
	// Env is the environment (app setting) name.
	Env string
	// Flag is the CLI flag that overrides Env; empty for settings only the environment gives
	// (secrets, the Functions schedule).
	Flag string
	// Group names settings that exclude each other: a flag given for one hides the environment
	// value of the others, so that a flag always wins (--output-dir over a connection string).
	Group string
	// Use says which commands take the flag.
	Use Use
	// Help is the flag's one-line help.
	Help string
}

// Settings lists every setting, in the order the CLI shows them.
var Settings = []Setting{
	{EnvScopes, "scopes", "", UseRun, "billing scopes, comma-separated"},
	{EnvCostDetailsScopes, "costdetails-scopes", "", UseRun, "scopes (of --scopes) always exported through Cost Details reports"},
	{EnvSource, "", "", 0, "auto (per partition, the fewest ARM calls), usageDetails or costDetails; the CLI's --source overrides it"},
	{EnvOutputDir, "output-dir", "output", UseStore, "local output directory (instead of Blob Storage)"},
	{EnvStorageConnection, "storage-connection", "output", UseStore, "Blob Storage connection string (Azurite: UseDevelopmentStorage=true)"},
	{EnvStorageAccountURL, "storage-account-url", "output", UseStore, "Blob Storage account URL (Entra ID / managed identity)"},
	{EnvContainer, "container", "", UseStore, "blob container"},
	{EnvPrefix, "prefix", "", UseStore, "blob name prefix of the output tree"},
	{EnvSchedule, "", "", 0, "timer schedule (six-field NCRONTAB)"},
	{EnvAPIVersion, "api-version", "", UseRun, "usageDetails API version"},
	{EnvMetric, "metric", "", UseRun, "actualcost, amortizedcost or usage (comma-separated for several)"},
	{EnvRestatementDays, "restatement-days", "", UseRun, "days after month end a period still changes"},
	{EnvManagementEndpoint, "endpoint", "", UseRun, "management endpoint"},
	{EnvAllowCustomEndpoint, "allow-custom-endpoint", "", UseRun, "allow a management endpoint outside the Azure clouds and loopback (true/false)"},
	{EnvToken, "", "token", 0, "static bearer token (secret: environment only)"},
	{EnvTokenFile, "token-file", "token", UseRun, "file holding a bearer token (instead of Entra ID credentials)"},
	{EnvCAFile, "ca-file", "", UseRun, "extra CA certificate (PEM) for the endpoint, e.g. the sandbox's"},
	{EnvGzip, "gzip", "", UseRun, "gzip the JSON lines (true/false)"},
	{EnvPartDays, "part-days", "", UseRun, "usage days per part file"},
	{EnvRatePerScope, "rate-per-scope", "", UseRun, "API calls per window per scope: kind=n,… and/or one n for every other kind (default: the observed limits per scope kind)"},
	{EnvRatePerTenant, "rate-per-tenant", "", UseRun, "API calls per window per tenant"},
	{EnvRateWindow, "rate-window", "", UseRun, "the window the rates count calls in (default 1m; tests shorten it)"},
	{EnvDropGuard, "drop-guard", "", UseRun, "hold a closed-period re-export that drops more than this fraction"},
	{EnvRowKey, "row-key", "", UseRun, "add a _rowKey content hash to each line (true/false)"},
	{EnvFocus, "focus", "", UseRun, "also build the FOCUS 1.2 dataset (implies actualcost and amortizedcost) (true/false)"},
	{EnvLogLevel, "log-level", "", UseStore | UseRun, "trace, debug, info, warn or error"},
	{EnvExpand, "expand", "", UseRun, "$expand value (default: meter details and additional info; none to send none)"},
	{EnvMaxMonths, "max-months", "", UseRun, "most billing periods one request or range may cover"},
	{EnvConcurrency, "concurrency", "", UseRun, "chunks fetched at once"},
	{EnvLeaseSeconds, "lease-seconds", "", UseRun, "partition lease in seconds (15-60): how long a dead writer blocks its partition"},
	{EnvQueue, "", "", 0, "work queue of the partitions (default usage-export-partitions; the queue function reads the same setting)"},
}

// Lookup returns the value of env: a flag given on the command line (flags maps setting names
// to the values of the flags that were set) wins over the environment, and a flag given for one
// setting of a group hides the environment value of the others. env is os.LookupEnv or a test's
// map.
func Lookup(flags map[string]string, env func(string) (string, bool)) func(string) (string, bool) {
	groupSet := map[string]bool{}
	for _, s := range Settings {
		if _, ok := flags[s.Env]; ok && s.Group != "" {
			groupSet[s.Group] = true
		}
	}
	return func(name string) (string, bool) {
		if v, ok := flags[name]; ok {
			return v, true
		}
		if i := slices.IndexFunc(Settings, func(s Setting) bool { return s.Env == name }); i >= 0 && groupSet[Settings[i].Group] {
			return "", false
		}
		return env(name)
	}
}

// UnknownNames returns one error per USAGE_EXPORT_* variable of environ ("NAME=value" items, as
// os.Environ gives them) that is not a setting, naming the closest setting when one is near.
func UnknownNames(environ []string) []error {
	var errs []error
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, Prefix) || slices.Contains(toolNames, name) || slices.ContainsFunc(Settings, func(s Setting) bool { return s.Env == name }) {
			continue
		}
		names := make([]string, len(Settings))
		for i, s := range Settings {
			names[i] = s.Env
		}
		msg := "is not a setting of Usage Export"
		if near := Suggest(name, names); near != "" {
			msg += fmt.Sprintf("; did you mean %s?", near)
		}
		errs = append(errs, fmt.Errorf("%s: %s", name, msg))
	}
	return errs
}

// Suggest returns the candidate nearest to s (case-insensitive edit distance), or "" when none is
// within a third of s's length: the "did you mean" of names and values.
func Suggest(s string, candidates []string) string {
	best, bestD := "", len(s)/3+1
	for _, c := range candidates {
		if d := levenshtein.Distance(strings.ToLower(s), strings.ToLower(c), nil); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}
