package config

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/agext/levenshtein"
	"github.com/usage-export/usage-export/internal/consumption"
	"github.com/usage-export/usage-export/internal/metric"
	"github.com/usage-export/usage-export/internal/scope"
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
// to Settings (TestEverySettingInTable holds the two together); the README's settings table and
// local.settings.json.example are generated from the rows (TestDocsFollowTable, -update).
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
	// Default is the value of an unset (or blank) setting, as text; "" for none.
	Default string
	// Help is the flag's one-line help.
	Help string
	// Doc is the README's meaning column (Markdown); Help when empty.
	Doc string
	// DefaultDoc is the README's default column when Default does not say it all ("(required)",
	// a default computed elsewhere).
	DefaultDoc string
	// Example is the value local.settings.json.example gives; Default when empty.
	Example string
	// parse checks the value (Default when unset) and stores it in the Config; nil for settings
	// another package reads (the work queue's name).
	parse func(c *Config, v string) error
}

// Settings lists every setting, in the order the CLI and the README show them.
var Settings = []Setting{
	{Env: EnvScopes, Flag: "scopes", Use: UseRun, DefaultDoc: "(required)", Example: "/subscriptions/00000000-0000-0000-0000-000000000000",
		Help:  "billing scopes, comma-separated",
		Doc:   "billing scopes, comma- or newline-separated, e.g. `/providers/Microsoft.Billing/billingAccounts/8608480`. Every form of the API: EA billing account, department, enrollment account; subscription; management group; MCA billing account, billing profile, invoice section, customer; optionally `/providers/Microsoft.Billing/billingPeriods/YYYYMM`. Also the HTTP function's allow-list.",
		parse: scopeList(func(c *Config) *[]scope.Scope { return &c.Scopes })},
	{Env: EnvSource, Default: string(DefaultSource),
		Help:  "auto (per partition, the fewest ARM calls), usageDetails or costDetails; the CLI's --source overrides it",
		Doc:   "which API exports a partition: `auto` picks per partition the one with the fewest ARM calls, then the soonest finish (Cost Details for EA/MCA partitions of ended months not yet exported and for those over about 3000 rows, usageDetails where Cost Details cannot serve: usage metric, management groups, other subscriptions, periods starting 13 months or more before now); `usageDetails` or `costDetails` force one. Rule and line shape: [docs/sources.md](docs/sources.md)",
		parse: parseSource},
	{Env: EnvCostDetailsScopes, Flag: "costdetails-scopes", Use: UseRun, DefaultDoc: "none",
		Help:  "scopes (of --scopes) always exported through Cost Details reports",
		Doc:   "scopes (among the above) always exported through Cost Details reports",
		parse: scopeList(func(c *Config) *[]scope.Scope { return &c.CostDetailsScopes })},
	{Env: EnvStorageAccountURL, Flag: "storage-account-url", Group: "output", Use: UseStore,
		Help:  "Blob Storage account URL (Entra ID / managed identity)",
		Doc:   "`https://<account>.blob.core.windows.net`, reached with Entra ID (managed identity)",
		parse: parseAccountURL},
	{Env: EnvStorageConnection, Flag: "storage-connection", Group: "output", Use: UseStore, Example: "UseDevelopmentStorage=true",
		Help:  "Blob Storage connection string (Azurite: UseDevelopmentStorage=true)",
		Doc:   "a connection string instead (Azurite: `UseDevelopmentStorage=true`); secret, never logged",
		parse: text(func(c *Config) *string { return &c.StorageConnection })},
	{Env: EnvOutputDir, Flag: "output-dir", Group: "output", Use: UseStore,
		Help:  "local output directory (instead of Blob Storage)",
		Doc:   "a local directory instead (CLI, development); same layout",
		parse: text(func(c *Config) *string { return &c.OutputDir })},
	{Env: EnvContainer, Flag: "container", Use: UseStore, Default: DefaultContainer,
		Help:  "blob container",
		Doc:   "blob container, created by an export if missing (never by `verify`)",
		parse: checked(ValidateContainer, func(c *Config) *string { return &c.Container })},
	{Env: EnvPrefix, Flag: "prefix", Use: UseStore, Default: DefaultPrefix,
		Help:  "blob name prefix of the output tree",
		Doc:   "folder the output tree starts in",
		parse: parsePrefix},
	{Env: EnvSchedule, Default: DefaultSchedule,
		Help:  "timer schedule (six-field NCRONTAB)",
		Doc:   "timer schedule (six-field NCRONTAB, UTC)",
		parse: parseSchedule},
	{Env: EnvAPIVersion, Flag: "api-version", Use: UseRun, Default: DefaultAPIVersion,
		Help:  "usageDetails API version",
		Doc:   "usageDetails API version: " + codeList(APIVersions),
		parse: oneOfText(APIVersions, "%q is not supported; use one of %s", func(c *Config) *string { return &c.APIVersion })},
	{Env: EnvMetric, Flag: "metric", Use: UseRun, Default: string(DefaultMetric),
		Help:  "actualcost, amortizedcost or usage (comma-separated for several)",
		Doc:   codeList(metric.Strings(metric.All)) + "; comma-separated for several (each its own tree)",
		parse: parseMetrics},
	{Env: EnvRestatementDays, Flag: "restatement-days", Use: UseRun, Default: strconv.Itoa(DefaultRestatementDays),
		Help:  "days after month end a period still changes",
		Doc:   "days after month end during which the previous period is re-exported (status `closing`)",
		parse: whole(0, 31, func(c *Config) *int { return &c.RestatementDays })},
	{Env: EnvManagementEndpoint, Flag: "endpoint", Use: UseRun, Default: DefaultManagementEndpoint,
		Help:  "management endpoint",
		Doc:   "ARM endpoint: " + codeList(ManagementHosts) + ", or loopback (the sandbox, http allowed); any other host needs the next setting, since bearer tokens are sent to it",
		parse: parseEndpoint},
	{Env: EnvAllowCustomEndpoint, Flag: "allow-custom-endpoint", Use: UseRun, Default: "false",
		Help:  "allow a management endpoint outside the Azure clouds and loopback (true/false)",
		Doc:   "`true` accepts a management endpoint outside the Azure clouds' hosts and loopback (https only)",
		parse: boolean(func(c *Config) *bool { return &c.AllowCustomEndpoint })},
	{Env: EnvToken, Group: "token",
		Help:  "static bearer token (secret: environment only)",
		Doc:   "a static bearer token for the billing API (sandbox, testing) instead of Entra ID; secret, never logged",
		parse: text(func(c *Config) *string { return &c.Token })},
	{Env: EnvTokenFile, Flag: "token-file", Group: "token", Use: UseRun,
		Help:  "file holding a bearer token (instead of Entra ID credentials)",
		Doc:   "a file holding that token instead; re-read when it changes",
		parse: text(func(c *Config) *string { return &c.TokenFile })},
	{Env: EnvCAFile, Flag: "ca-file", Use: UseRun,
		Help:  "extra CA certificate (PEM) for the endpoint, e.g. the sandbox's",
		Doc:   "extra CA certificate (PEM) for the endpoint (the sandbox with `--tls`)",
		parse: text(func(c *Config) *string { return &c.CAFile })},
	{Env: EnvClientID,
		Help:  "client id of the user-assigned managed identity to use",
		parse: text(func(c *Config) *string { return &c.ClientID })},
	{Env: EnvGzip, Flag: "gzip", Use: UseRun, Default: "true",
		Help:  "gzip the JSON lines (true/false)",
		Doc:   "gzip the JSON lines (`.jsonl.gz`)",
		parse: boolean(func(c *Config) *bool { return &c.Gzip })},
	{Env: EnvPartDays, Flag: "part-days", Use: UseRun, Default: strconv.Itoa(DefaultPartDays),
		Help:  "usage days per part file",
		Doc:   "usage days per part file (new partitions; an existing partition keeps its layout)",
		parse: whole(1, 31, func(c *Config) *int { return &c.PartDays })},
	{Env: EnvConcurrency, Flag: "concurrency", Use: UseRun, Default: strconv.Itoa(DefaultConcurrency),
		Help:  "chunks fetched at once",
		Doc:   "listings in flight across a run (a partition's listings run one after another)",
		parse: whole(1, 64, func(c *Config) *int { return &c.Concurrency })},
	{Env: EnvLeaseSeconds, Flag: "lease-seconds", Use: UseRun, Default: strconv.Itoa(DefaultLeaseSeconds),
		Help:  "partition lease in seconds (15-60): how long a dead writer blocks its partition",
		Doc:   "partition lease (15–60 s): one writer per partition; a writer that dies blocks its partition at most this long",
		parse: whole(15, 60, func(c *Config) *int { return &c.LeaseSeconds })},
	{Env: EnvRatePerScope, Flag: "rate-per-scope", Use: UseRun, DefaultDoc: "per scope kind: " + perKindDoc(),
		Help:  "API calls per window per scope: kind=n,… and/or one n for every other kind (default: the observed limits per scope kind)",
		Doc:   "API calls per window per scope. The defaults are the limits the service was observed to grant (Microsoft staff, 2023), well below the documented 30 a minute. `kind=n,…` overrides the named kinds; one bare number (`30`, or `12,department=4`) applies to every kind not named. The budget also slows down by itself on 429s and exhausted remaining-quota headers, and speeds back up",
		parse: parseRates},
	{Env: EnvRatePerTenant, Flag: "rate-per-tenant", Use: UseRun, Default: strconv.Itoa(DefaultRatePerTenant),
		Help:  "API calls per window per tenant",
		Doc:   "API calls per window for the tenant",
		parse: whole(1, 100000, func(c *Config) *int { return &c.RatePerTenant })},
	{Env: EnvRateWindow, Flag: "rate-window", Use: UseRun, Default: durationText(DefaultRateWindow),
		Help:  "the window the rates count calls in (tests shorten it)",
		Doc:   "the window the two rates above count calls in (tests and benchmarks shorten it along with the sandbox's `-rate-window`)",
		parse: parseRateWindow},
	{Env: EnvDropGuard, Flag: "drop-guard", Use: UseRun, Default: strconv.FormatFloat(DefaultDropGuard, 'f', -1, 64),
		Help:  "hold a closed-period re-export that drops more than this fraction",
		Doc:   "hold back a re-export of a closed period whose rows or cost drop by more than this fraction",
		parse: parseDropGuard},
	{Env: EnvRowKey, Flag: "row-key", Use: UseRun, Default: "false",
		Help:  "add a _rowKey content hash to each line (true/false)",
		Doc:   "add a deterministic `_rowKey` content hash to each line",
		parse: boolean(func(c *Config) *bool { return &c.RowKey })},
	{Env: EnvFocus, Flag: "focus", Use: UseRun, Default: "false",
		Help:  "also build the FOCUS 1.2 dataset (implies actualcost and amortizedcost) (true/false)",
		Doc:   "also build the FOCUS 1.2 dataset (`dataset=focus/…`) from the committed actual and amortized partitions; turns on both metrics",
		parse: boolean(func(c *Config) *bool { return &c.Focus })},
	{Env: EnvExpand, Flag: "expand", Use: UseRun, Default: DefaultExpand, DefaultDoc: "meter details and additional info",
		Help:  "$expand value (default: meter details and additional info; none to send none)",
		Doc:   "`$expand`; by default `" + consumption.DefaultExpand(DefaultAPIVersion) + "` (2018-06-30: `" + consumption.DefaultExpand("2018-06-30") + "`), so EA records carry meter names and categories; any other value is sent as it is; `none` sends none",
		parse: parseExpand},
	{Env: EnvMaxMonths, Flag: "max-months", Use: UseRun, Default: strconv.Itoa(DefaultMaxMonths),
		Help:  "most billing periods one request or range may cover",
		Doc:   "longest month range one request may ask for",
		parse: whole(1, 120, func(c *Config) *int { return &c.MaxMonths })},
	{Env: EnvLogLevel, Flag: "log-level", Use: UseStore | UseRun, Default: DefaultLogLevel,
		Help:  "trace, debug, info, warn or error",
		Doc:   codeList(LogLevels),
		parse: parseLogLevel},
	{Env: EnvQueue, Default: DefaultQueue,
		Help: "work queue of the partitions (default usage-export-partitions; the queue function reads the same setting)",
		Doc:  "the work queue of the partitions; the queue function's trigger names the same setting"},
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
// os.Environ gives them) that is not a setting (a *SettingError), naming the closest setting when one is near.
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
		errs = append(errs, &SettingError{Setting: name, Err: errors.New(msg)})
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
