// Package config holds the app settings of Usage Export, shared by the Functions app and the
// CLI: one Config, loaded from a lookup function (the environment in production, flags in the
// CLI), validated in one pass that reports every problem at once.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/usage-export/usage-export/internal/consumption"
	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/metric"
	"github.com/usage-export/usage-export/internal/mgmt"
	"github.com/usage-export/usage-export/internal/ratelimit"
	"github.com/usage-export/usage-export/internal/scope"
	"github.com/usage-export/usage-export/internal/source"
	"github.com/usage-export/usage-export/internal/workqueue"
)

// Setting names. Flags of the CLI use the same names in lower case without the prefix
// (USAGE_EXPORT_API_VERSION ↔ --api-version).
const (
	EnvScopes             = "USAGE_EXPORT_SCOPES"
	EnvCostDetailsScopes  = "USAGE_EXPORT_COSTDETAILS_SCOPES"
	EnvSource             = "USAGE_EXPORT_SOURCE"
	EnvStorageAccountURL  = "USAGE_EXPORT_STORAGE_ACCOUNT_URL"
	EnvStorageConnection  = "USAGE_EXPORT_STORAGE_CONNECTION"
	EnvOutputDir          = "USAGE_EXPORT_OUTPUT_DIR"
	EnvContainer          = "USAGE_EXPORT_CONTAINER"
	EnvPrefix             = "USAGE_EXPORT_PREFIX"
	EnvSchedule           = "USAGE_EXPORT_SCHEDULE"
	EnvAPIVersion         = "USAGE_EXPORT_API_VERSION"
	EnvMetric             = "USAGE_EXPORT_METRIC"
	EnvRestatementDays    = "USAGE_EXPORT_RESTATEMENT_DAYS"
	EnvManagementEndpoint = "USAGE_EXPORT_MANAGEMENT_ENDPOINT"
	EnvToken              = "USAGE_EXPORT_TOKEN"
	EnvTokenFile          = "USAGE_EXPORT_TOKEN_FILE"
	EnvCAFile             = "USAGE_EXPORT_CA_FILE"
	EnvGzip               = "USAGE_EXPORT_GZIP"
	EnvPartDays           = "USAGE_EXPORT_PART_DAYS"
	EnvRatePerScope       = "USAGE_EXPORT_RATE_PER_SCOPE"
	EnvRatePerTenant      = "USAGE_EXPORT_RATE_PER_TENANT"
	EnvRateWindow         = "USAGE_EXPORT_RATE_WINDOW"
	EnvDropGuard          = "USAGE_EXPORT_DROP_GUARD"
	EnvRowKey             = "USAGE_EXPORT_ROW_KEY"
	EnvFocus              = "USAGE_EXPORT_FOCUS"
	EnvLogLevel           = "USAGE_EXPORT_LOG_LEVEL"
	EnvExpand             = "USAGE_EXPORT_EXPAND"
	EnvMaxMonths          = "USAGE_EXPORT_MAX_MONTHS"
	EnvConcurrency        = "USAGE_EXPORT_CONCURRENCY"
	EnvLeaseSeconds       = "USAGE_EXPORT_LEASE_SECONDS"
	// EnvQueue names the work queue (internal/workqueue's setting; the queue function's
	// function.json names it as %USAGE_EXPORT_QUEUE%).
	EnvQueue    = workqueue.EnvQueue
	EnvClientID = "AZURE_CLIENT_ID"
)

// Defaults. The values other packages own are theirs: the data path's in export, the rate
// budget's in ratelimit, the API client's in consumption.
const (
	DefaultContainer          = "usage-export"
	DefaultPrefix             = "usage"
	DefaultSchedule           = "0 0 4 * * *"
	DefaultAPIVersion         = consumption.DefaultAPIVersion
	DefaultMetric             = metric.ActualCost
	DefaultSource             = source.Auto // per partition, the source with the fewest ARM calls (docs/sources.md)
	DefaultRestatementDays    = export.DefaultRestatementDays
	DefaultManagementEndpoint = mgmt.DefaultEndpoint
	DefaultPartDays           = export.DefaultPartDays
	DefaultRatePerTenant      = ratelimit.DefaultPerTenant // calls per window per tenant (documented limit)
	DefaultRateWindow         = ratelimit.DefaultWindow    // the window the rates count calls in
	DefaultDropGuard          = export.DefaultDropGuard
	DefaultExpand             = "" // consumption.DefaultExpand: meter details and additional info
	DefaultMaxMonths          = 36
	DefaultConcurrency        = export.DefaultConcurrency
	DefaultLeaseSeconds       = int(export.DefaultLeaseTTL / time.Second) // a dead writer blocks its partition at most this long
	DefaultLogLevel           = "info"
	// DefaultQueue is the work queue's name (internal/workqueue's, which reads EnvQueue).
	DefaultQueue = workqueue.DefaultQueue
)

// minRateWindow is the shortest rate window: tests and benchmarks shorten the window along with
// the sandbox's -rate-window, to run the real per-kind rates faster.
const minRateWindow = 100 * time.Millisecond

// APIVersions lists the supported usageDetails API versions (the client's).
var APIVersions = consumption.APIVersions

// ManagementHosts are the Azure clouds' Resource Manager hosts (public, China, US Government);
// any other endpoint but loopback needs EnvAllowCustomEndpoint.
var ManagementHosts = []string{"management.azure.com", "management.chinacloudapi.cn", "management.usgovcloudapi.net"}

// LogLevels are the values of EnvLogLevel.
var LogLevels = []string{"trace", "debug", "info", "warn", "error"}

// Config is the validated configuration.
type Config struct {
	Scopes             []scope.Scope
	CostDetailsScopes  []scope.Scope
	Source             manifest.Source // auto | usageDetails | costDetails
	StorageAccountURL  string
	StorageConnection  string // secret: never logged
	OutputDir          string
	Container          string
	Prefix             string
	Schedule           string
	APIVersion         string
	Metrics            []metric.Metric
	RestatementDays    int
	ManagementEndpoint string
	Token              string // secret: never logged
	TokenFile          string
	CAFile             string
	Gzip               bool
	PartDays           int
	RatePerScope       int                // calls per window of a scope of any kind not in RatePerKind; 0 = ratelimit.DefaultPerKind
	RatePerKind        map[scope.Kind]int // calls per window of one scope, by kind
	RatePerTenant      int
	RateWindow         time.Duration
	DropGuard          float64
	RowKey             bool
	Focus              bool // build the FOCUS dataset; implies the actualcost and amortizedcost metrics
	LogLevel           string
	Expand             string
	MaxMonths          int
	Concurrency        int
	LeaseSeconds       int
	ClientID           string

	// AllowCustomEndpoint accepts a ManagementEndpoint outside ManagementHosts and loopback.
	AllowCustomEndpoint bool
}

// Load reads and validates the settings, each as its row of Settings says. lookup returns a
// setting's value and whether it is set (os.LookupEnv); an unset or blank setting takes its
// default. needScopes and needOutput say whether scopes and an output are required (the sandbox
// command needs neither). Every problem is reported, in one *Error.
func Load(lookup func(string) (string, bool), needScopes, needOutput bool) (*Config, error) {
	c := &Config{}
	var errs []error
	failed := map[string]bool{}
	for _, s := range Settings {
		if s.parse == nil {
			continue
		}
		v := s.Default
		if x, ok := lookup(s.Env); ok && strings.TrimSpace(x) != "" {
			v = strings.TrimSpace(x)
		}
		if err := s.parse(c, v); err != nil {
			errs = append(errs, &SettingError{Setting: s.Env, Err: err})
			failed[s.Env] = true
		}
	}
	c.addFocusMetrics()
	for _, err := range unjoin(c.Validate(needScopes, needOutput)) {
		// A setting that did not parse is reported once: the checks saw no value of it.
		if se := (*SettingError)(nil); errors.As(err, &se) && failed[se.Setting] {
			continue
		}
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, &Error{Joined: errors.Join(errs...)}
	}
	return c, nil
}

// SettingError is a problem with one setting ("output" for the three output settings together).
type SettingError struct {
	Setting string
	Err     error
}

func (e *SettingError) Error() string { return e.Setting + ": " + e.Err.Error() }
func (e *SettingError) Unwrap() error { return e.Err }

// Error is every problem of the settings: errors.Join of one *SettingError per problem, so
// errors.Is and errors.As see every cause.
type Error struct{ Joined error }

// Error lists the problems, one an indented line.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("invalid settings:")
	for _, err := range e.Unwrap() {
		b.WriteString("\n  ")
		b.WriteString(err.Error())
	}
	return b.String()
}

// Unwrap returns the problems.
func (e *Error) Unwrap() []error { return unjoin(e.Joined) }

// unjoin returns the errors errors.Join joined into err (none for nil).
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	if err == nil {
		return nil
	}
	return []error{err}
}

// addFocusMetrics adds the two cost views the FOCUS dataset is built from.
func (c *Config) addFocusMetrics() {
	if !c.Focus {
		return
	}
	for _, m := range []metric.Metric{metric.ActualCost, metric.AmortizedCost} {
		if !slices.Contains(c.Metrics, m) {
			c.Metrics = append(c.Metrics, m)
		}
	}
}

// Validate checks what involves more than one setting and returns every problem, joined
// (errors.Join; nil when there is none). needScopes and needOutput are Load's.
func (c *Config) Validate(needScopes, needOutput bool) error {
	var errs []error
	bad := func(k, format string, args ...any) {
		errs = append(errs, &SettingError{Setting: k, Err: fmt.Errorf(format, args...)})
	}
	if needScopes && len(c.Scopes) == 0 {
		bad(EnvScopes, "no scopes configured; set one or more billing scopes, e.g. /providers/Microsoft.Billing/billingAccounts/1234567")
	}
	for _, cd := range c.CostDetailsScopes {
		if !slices.ContainsFunc(c.Scopes, cd.Equal) {
			bad(EnvCostDetailsScopes, "%s is not one of %s", cd, EnvScopes)
		}
	}
	if c.APIVersion == "2018-06-30" && slices.ContainsFunc(c.Metrics, func(m metric.Metric) bool { return m != metric.ActualCost }) {
		bad(EnvMetric, "API version 2018-06-30 has no metric parameter; only actualcost is available")
	}
	if u, err := url.Parse(c.ManagementEndpoint); err == nil && !c.AllowCustomEndpoint && !isLoopback(u.Hostname()) && !slices.Contains(ManagementHosts, strings.ToLower(u.Hostname())) {
		bad(EnvManagementEndpoint, "%q is not an Azure Resource Manager host (%s) nor loopback; bearer tokens are sent there, so set %s=true if it is meant",
			c.ManagementEndpoint, strings.Join(ManagementHosts, ", "), EnvAllowCustomEndpoint)
	}
	if c.Token != "" && c.TokenFile != "" {
		bad(EnvToken, "set either %s or %s, not both", EnvToken, EnvTokenFile)
	}
	outputs := 0
	for _, v := range []string{c.StorageAccountURL, c.StorageConnection, c.OutputDir} {
		if v != "" {
			outputs++
		}
	}
	if needOutput && outputs == 0 {
		bad("output", "set one of %s (managed identity), %s (connection string) or %s (local directory)",
			EnvStorageAccountURL, EnvStorageConnection, EnvOutputDir)
	}
	if outputs > 1 {
		bad("output", "set only one of %s, %s and %s", EnvStorageAccountURL, EnvStorageConnection, EnvOutputDir)
	}
	return errors.Join(errs...)
}

// ParseScopes parses a list of scopes separated by commas, semicolons or newlines. Duplicates
// are an error.
func ParseScopes(s string) ([]scope.Scope, error) {
	var out []scope.Scope
	var errs []error
	for _, item := range splitList(s) {
		sc, err := scope.Parse(item)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if slices.ContainsFunc(out, sc.Equal) {
			errs = append(errs, fmt.Errorf("scope %s is listed twice", sc))
			continue
		}
		out = append(out, sc)
	}
	return out, errors.Join(errs...)
}

func splitList(s string) []string {
	f := func(r rune) bool { return r == ',' || r == ';' || r == '\n' || r == '\r' }
	var out []string
	for _, p := range strings.FieldsFunc(s, f) {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Allowed returns the configured scope equal to s, if any: the HTTP function's allow-list.
func (c *Config) Allowed(s scope.Scope) (scope.Scope, bool) {
	for _, x := range c.Scopes {
		if x.Equal(s) {
			return x, true
		}
	}
	return scope.Scope{}, false
}

// Sources are the values of EnvSource: internal/source's settings.
var Sources = source.Settings

// UsesCostDetails reports whether s is configured for the Cost Details source.
func (c *Config) UsesCostDetails(s scope.Scope) bool {
	return slices.ContainsFunc(c.CostDetailsScopes, s.Equal)
}

// names returns typed strings as strings, for messages.
func names[T ~string](xs []T) []string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = string(x)
	}
	return s
}

// ValidateEndpoint checks a management endpoint: https, or http on a loopback address (the
// sandbox); no path, query or user info.
func ValidateEndpoint(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", s)
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q must be scheme and host only", s)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return fmt.Errorf("%q: plain http is only allowed on a loopback address (the sandbox)", s)
		}
	default:
		return fmt.Errorf("%q: scheme must be https", s)
	}
	return nil
}

func isLoopback(h string) bool {
	return h == "localhost" || h == "::1" || strings.HasPrefix(h, "127.")
}

// ValidatePrefix checks a blob prefix: '/'-separated segments of letters, digits, '-', '_', '.',
// '=' with no "." or ".." segment, at most 256 bytes.
func ValidatePrefix(p string) error {
	if len(p) > 256 {
		return fmt.Errorf("longer than 256 characters")
	}
	if p == "" {
		return nil
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." || strings.HasPrefix(seg, "_") {
			return fmt.Errorf("%q: empty, '.', '..' or '_'-prefixed segment", p)
		}
		for _, r := range seg {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.=", r)) {
				return fmt.Errorf("%q: character %q not allowed (letters, digits, - _ . =)", p, r)
			}
		}
	}
	return nil
}

// ValidateContainer checks an Azure container name: 3–63 lower-case letters, digits and
// single hyphens, starting and ending with a letter or digit.
func ValidateContainer(s string) error {
	if len(s) < 3 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' || strings.Contains(s, "--") {
		return fmt.Errorf("%q is not a valid container name (3-63 lower-case letters, digits, single hyphens)", s)
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return fmt.Errorf("%q is not a valid container name (3-63 lower-case letters, digits, single hyphens)", s)
		}
	}
	return nil
}
