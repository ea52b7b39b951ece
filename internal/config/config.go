// Package config holds the app settings of Usage Export, shared by the Functions app and the
// CLI: one Config, loaded from a lookup function (the environment in production, flags in the
// CLI), validated in one pass that reports every problem at once.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/usage-export/usage-export/internal/consumption"
	"github.com/usage-export/usage-export/internal/ratelimit"
	"github.com/usage-export/usage-export/internal/scope"
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
	// EnvQueue names the work queue (read by internal/workqueue; the queue function's
	// function.json names it as %USAGE_EXPORT_QUEUE%).
	EnvQueue    = "USAGE_EXPORT_QUEUE"
	EnvClientID = "AZURE_CLIENT_ID"
)

// Defaults.
const (
	DefaultContainer          = "usage-export"
	DefaultPrefix             = "usage"
	DefaultSchedule           = "0 0 4 * * *"
	DefaultAPIVersion         = "2024-08-01"
	DefaultMetric             = "actualcost"
	DefaultSource             = "auto" // per partition, the source with the fewest ARM calls (docs/sources.md)
	DefaultRestatementDays    = 5
	DefaultManagementEndpoint = "https://management.azure.com"
	DefaultPartDays           = 1
	DefaultRatePerTenant      = ratelimit.DefaultPerTenant // calls per window per tenant (documented limit)
	DefaultRateWindow         = ratelimit.DefaultWindow    // the window the rates count calls in
	DefaultDropGuard          = 0.5
	DefaultExpand             = "" // consumption.DefaultExpand: meter details and additional info
	DefaultMaxMonths          = 36
	DefaultConcurrency        = 4
	DefaultLeaseSeconds       = 60 // partition lease; a dead writer blocks its partition at most this long
)

// minRateWindow is the shortest rate window: tests and benchmarks shorten the window along with
// the sandbox's -rate-window, to run the real per-kind rates faster.
const minRateWindow = 100 * time.Millisecond

// APIVersions lists the supported usageDetails API versions.
var APIVersions = []string{"2018-06-30", "2019-10-01", "2021-10-01", "2023-05-01", "2023-11-01", "2024-08-01"}

// ManagementHosts are the Azure clouds' Resource Manager hosts (public, China, US Government);
// any other endpoint but loopback needs EnvAllowCustomEndpoint.
var ManagementHosts = []string{"management.azure.com", "management.chinacloudapi.cn", "management.usgovcloudapi.net"}

// Metrics lists the accepted metric values.
var Metrics = []string{"actualcost", "amortizedcost", "usage"}

// Config is the validated configuration.
type Config struct {
	Scopes             []scope.Scope
	CostDetailsScopes  []scope.Scope
	Source             string // auto | usageDetails | costDetails
	StorageAccountURL  string
	StorageConnection  string // secret: never logged
	OutputDir          string
	Container          string
	Prefix             string
	Schedule           string
	APIVersion         string
	Metrics            []string
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

// Load reads and validates the settings. lookup returns a setting's value and whether it is set
// (os.LookupEnv). needScopes and needOutput say whether scopes and an output are required (the
// sandbox command needs neither). Every problem is reported, joined into one error.
func Load(lookup func(string) (string, bool), needScopes, needOutput bool) (*Config, error) {
	get := func(k, def string) string {
		if v, ok := lookup(k); ok && strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v)
		}
		return def
	}
	var errs []error
	bad := func(k, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", k, fmt.Sprintf(format, args...)))
	}
	atoi := func(k string, def, min, max int) int {
		v := get(k, strconv.Itoa(def))
		n, err := strconv.Atoi(v)
		if err != nil || n < min || n > max {
			bad(k, "%q is not a whole number from %d to %d", v, min, max)
			return def
		}
		return n
	}
	boolean := func(k string, def bool) bool {
		v := get(k, strconv.FormatBool(def))
		b, err := strconv.ParseBool(v)
		if err != nil {
			bad(k, "%q is not true or false", v)
			return def
		}
		return b
	}
	c := &Config{
		StorageAccountURL:  get(EnvStorageAccountURL, ""),
		StorageConnection:  get(EnvStorageConnection, ""),
		OutputDir:          get(EnvOutputDir, ""),
		Container:          get(EnvContainer, DefaultContainer),
		Prefix:             strings.Trim(get(EnvPrefix, DefaultPrefix), "/"),
		Schedule:           get(EnvSchedule, DefaultSchedule),
		APIVersion:         get(EnvAPIVersion, DefaultAPIVersion),
		ManagementEndpoint: strings.TrimSuffix(get(EnvManagementEndpoint, DefaultManagementEndpoint), "/"),
		Token:              get(EnvToken, ""),
		TokenFile:          get(EnvTokenFile, ""),
		CAFile:             get(EnvCAFile, ""),
		LogLevel:           strings.ToLower(get(EnvLogLevel, "info")),
		Expand:             get(EnvExpand, DefaultExpand),
		ClientID:           get(EnvClientID, ""),
	}
	if strings.EqualFold(c.Expand, consumption.ExpandNone) {
		c.Expand = consumption.ExpandNone
	}
	c.Gzip = boolean(EnvGzip, true)
	c.RowKey = boolean(EnvRowKey, false)
	c.Focus = boolean(EnvFocus, false)
	c.AllowCustomEndpoint = boolean(EnvAllowCustomEndpoint, false)
	c.RestatementDays = atoi(EnvRestatementDays, DefaultRestatementDays, 0, 31)
	c.PartDays = atoi(EnvPartDays, DefaultPartDays, 1, 31)
	if rs := get(EnvRatePerScope, ""); rs != "" {
		var err error
		if c.RatePerScope, c.RatePerKind, err = ratelimit.ParseRates(rs); err != nil {
			bad(EnvRatePerScope, "%v", err)
		}
	}
	rw := get(EnvRateWindow, DefaultRateWindow.String())
	if d, err := time.ParseDuration(rw); err != nil || d < minRateWindow || d > time.Hour {
		bad(EnvRateWindow, "%q is not a duration from %s to 1h", rw, minRateWindow)
		c.RateWindow = DefaultRateWindow
	} else {
		c.RateWindow = d
	}
	c.RatePerTenant = atoi(EnvRatePerTenant, DefaultRatePerTenant, 1, 100000)
	c.MaxMonths = atoi(EnvMaxMonths, DefaultMaxMonths, 1, 120)
	c.Concurrency = atoi(EnvConcurrency, DefaultConcurrency, 1, 64)
	c.LeaseSeconds = atoi(EnvLeaseSeconds, DefaultLeaseSeconds, 15, 60)
	dg := get(EnvDropGuard, strconv.FormatFloat(DefaultDropGuard, 'f', -1, 64))
	if f, err := strconv.ParseFloat(dg, 64); err != nil || f <= 0 || f >= 1 {
		bad(EnvDropGuard, "%q is not a fraction between 0 and 1 (exclusive)", dg)
		c.DropGuard = DefaultDropGuard
	} else {
		c.DropGuard = f
	}

	var err error
	if c.Scopes, err = ParseScopes(get(EnvScopes, "")); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", EnvScopes, err))
	}
	if needScopes && len(c.Scopes) == 0 && err == nil {
		bad(EnvScopes, "no scopes configured; set one or more billing scopes, e.g. /providers/Microsoft.Billing/billingAccounts/1234567")
	}
	if c.CostDetailsScopes, err = ParseScopes(get(EnvCostDetailsScopes, "")); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", EnvCostDetailsScopes, err))
	}
	for _, cd := range c.CostDetailsScopes {
		if !slices.ContainsFunc(c.Scopes, cd.Equal) {
			bad(EnvCostDetailsScopes, "%s is not one of %s", cd, EnvScopes)
		}
	}
	c.Source = get(EnvSource, DefaultSource)
	if !slices.Contains(Sources, c.Source) {
		bad(EnvSource, "%q is not a source; use one of %s", c.Source, strings.Join(Sources, ", "))
	}
	if !slices.Contains(APIVersions, c.APIVersion) {
		bad(EnvAPIVersion, "%q is not supported; use one of %s", c.APIVersion, strings.Join(APIVersions, ", "))
	}
	metrics := get(EnvMetric, DefaultMetric)
	for _, m := range splitList(metrics) {
		m = strings.ToLower(m)
		if !slices.Contains(Metrics, m) {
			if near := Suggest(m, Metrics); near != "" {
				bad(EnvMetric, "%q is not one of %s; did you mean %s?", m, strings.Join(Metrics, ", "), near)
			} else {
				bad(EnvMetric, "%q is not one of %s", m, strings.Join(Metrics, ", "))
			}
			continue
		}
		if !slices.Contains(c.Metrics, m) {
			c.Metrics = append(c.Metrics, m)
		}
	}
	if len(c.Metrics) == 0 {
		c.Metrics = []string{DefaultMetric}
	}
	if c.Focus { // the FOCUS dataset is built from both cost views
		for _, m := range []string{"actualcost", "amortizedcost"} {
			if !slices.Contains(c.Metrics, m) {
				c.Metrics = append(c.Metrics, m)
			}
		}
	}
	if c.APIVersion == "2018-06-30" && (len(c.Metrics) > 1 || c.Metrics[0] != "actualcost") {
		bad(EnvMetric, "API version 2018-06-30 has no metric parameter; only actualcost is available")
	}
	if err := ValidateEndpoint(c.ManagementEndpoint); err != nil {
		bad(EnvManagementEndpoint, "%v", err)
	} else if u, _ := url.Parse(c.ManagementEndpoint); !c.AllowCustomEndpoint && !isLoopback(u.Hostname()) && !slices.Contains(ManagementHosts, strings.ToLower(u.Hostname())) {
		bad(EnvManagementEndpoint, "%q is not an Azure Resource Manager host (%s) nor loopback; bearer tokens are sent there, so set %s=true if it is meant",
			c.ManagementEndpoint, strings.Join(ManagementHosts, ", "), EnvAllowCustomEndpoint)
	}
	if err := ValidatePrefix(c.Prefix); err != nil {
		bad(EnvPrefix, "%v", err)
	}
	if err := ValidateContainer(c.Container); err != nil {
		bad(EnvContainer, "%v", err)
	}
	if c.Token != "" && c.TokenFile != "" {
		bad(EnvToken, "set either %s or %s, not both", EnvToken, EnvTokenFile)
	}
	if fields := strings.Fields(c.Schedule); len(fields) != 6 {
		bad(EnvSchedule, "%q is not a six-field NCRONTAB expression ({second} {minute} {hour} {day} {month} {day-of-week})", c.Schedule)
	}
	switch c.LogLevel {
	case "trace", "debug", "info", "warn", "error":
	default:
		bad(EnvLogLevel, "%q is not one of trace, debug, info, warn, error", c.LogLevel)
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
	if c.StorageAccountURL != "" {
		if u, err := url.Parse(c.StorageAccountURL); err != nil || u.Host == "" || (u.Scheme != "https" && !isLoopback(u.Hostname())) {
			bad(EnvStorageAccountURL, "%q is not an https account URL like https://<account>.blob.core.windows.net", c.StorageAccountURL)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("invalid settings:\n  %w", joinIndented(errs))
	}
	return c, nil
}

func joinIndented(errs []error) error {
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return errors.New(strings.Join(msgs, "\n  "))
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

// Sources are the values of EnvSource (internal/source's settings).
var Sources = []string{"auto", "usageDetails", "costDetails"}

// UsesCostDetails reports whether s is configured for the Cost Details source.
func (c *Config) UsesCostDetails(s scope.Scope) bool {
	return slices.ContainsFunc(c.CostDetailsScopes, s.Equal)
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
