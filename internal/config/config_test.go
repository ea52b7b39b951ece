package config

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/usage-export/usage-export/internal/consumption"
	"github.com/usage-export/usage-export/internal/metric"
	"github.com/usage-export/usage-export/internal/scope"
)

func lookup(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestDefaults(t *testing.T) {
	c, err := Load(lookup(map[string]string{
		EnvScopes:    "/providers/Microsoft.Billing/billingAccounts/8608480, /subscriptions/abc",
		EnvOutputDir: "out",
	}), true, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Scopes) != 2 || c.APIVersion != DefaultAPIVersion || c.Container != DefaultContainer || c.Prefix != DefaultPrefix ||
		!c.Gzip || c.PartDays != 1 || c.RatePerScope != 0 || c.RatePerKind != nil || c.RatePerTenant != 200 || c.RateWindow != time.Minute || c.DropGuard != 0.5 ||
		c.RestatementDays != 5 || c.Metrics[0] != "actualcost" || c.Expand != "" || c.ManagementEndpoint != DefaultManagementEndpoint {
		t.Errorf("defaults: %+v", c)
	}
	if _, ok := c.Allowed(c.Scopes[1]); !ok {
		t.Error("a configured scope is not allowed")
	}
}

// TestEveryProblemAtOnce checks that one error lists every bad setting, by name.
func TestEveryProblemAtOnce(t *testing.T) {
	_, err := Load(lookup(map[string]string{
		EnvScopes:             "/providers/Microsoft.Billing/bogus/1",
		EnvAPIVersion:         "2020-01-01",
		EnvMetric:             "actualcost,cheapcost",
		EnvRestatementDays:    "-1",
		EnvManagementEndpoint: "http://management.example.com",
		EnvPrefix:             "../escape",
		EnvContainer:          "Bad_Container",
		EnvDropGuard:          "2",
		EnvGzip:               "maybe",
		EnvSchedule:           "0 4 * * *",
		EnvLogLevel:           "loud",
		EnvRatePerScope:       "department=0,resourceGroup=3",
		EnvRateWindow:         "1ms",
		EnvOutputDir:          "out",
		EnvStorageConnection:  "UseDevelopmentStorage=true",
	}), true, true)
	if err == nil {
		t.Fatal("no error")
	}
	for _, name := range []string{EnvScopes, EnvAPIVersion, EnvMetric, EnvRestatementDays, EnvManagementEndpoint, EnvPrefix,
		EnvContainer, EnvDropGuard, EnvGzip, EnvSchedule, EnvLogLevel, EnvRatePerScope, `"resourceGroup"`, `"department=0"`,
		EnvRateWindow, "output"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not mention %s:\n%v", name, err)
		}
	}
	if strings.Contains(err.Error(), "UseDevelopmentStorage") {
		t.Error("the error repeats a connection string")
	}
}

func TestRequired(t *testing.T) {
	_, err := Load(lookup(nil), true, true)
	if err == nil || !strings.Contains(err.Error(), EnvScopes) || !strings.Contains(err.Error(), EnvStorageAccountURL) {
		t.Errorf("missing scopes and output: %v", err)
	}
	if _, err := Load(lookup(nil), false, false); err != nil {
		t.Errorf("nothing required: %v", err)
	}
}

func TestValidators(t *testing.T) {
	for _, ok := range []string{"https://management.azure.com", "https://management.usgovcloudapi.net/", "http://127.0.0.1:8080", "http://localhost:1"} {
		if err := ValidateEndpoint(ok); err != nil {
			t.Errorf("ValidateEndpoint(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "management.azure.com", "http://10.0.0.1", "https://user:pw@host", "https://host/path", "https://host?x=1", "ftp://host"} {
		if err := ValidateEndpoint(bad); err == nil {
			t.Errorf("ValidateEndpoint(%q) = nil", bad)
		}
	}
	for _, bad := range []string{"..", "a/../b", "a//b", "_control", "a b", "a\\b", strings.Repeat("x", 300)} {
		if err := ValidatePrefix(bad); err == nil {
			t.Errorf("ValidatePrefix(%q) = nil", bad)
		}
	}
	if err := ValidatePrefix("exports/usage-v1"); err != nil {
		t.Error(err)
	}
	if _, err := ParseScopes("/subscriptions/a,/subscriptions/A"); err == nil {
		t.Error("duplicate scopes (ids compare case-insensitively) accepted")
	}
}

func TestFocusImpliesBothCostMetrics(t *testing.T) {
	for _, c := range []struct {
		metric string
		want   []metric.Metric
	}{
		{"", []metric.Metric{"actualcost", "amortizedcost"}},
		{"usage", []metric.Metric{"usage", "actualcost", "amortizedcost"}},
		{"amortizedcost,actualcost", []metric.Metric{"amortizedcost", "actualcost"}},
	} {
		env := map[string]string{EnvScopes: "/subscriptions/00000000-0000-0000-0000-000000000001", EnvOutputDir: "out",
			EnvFocus: "true", EnvMetric: c.metric}
		cfg, err := Load(lookup(env), true, true)
		if err != nil {
			t.Fatal(err)
		}
		if !cfg.Focus || !slices.Equal(cfg.Metrics, c.want) {
			t.Errorf("metric %q: focus %v metrics %v, want %v", c.metric, cfg.Focus, cfg.Metrics, c.want)
		}
	}
}

// TestRateSettings checks the per-scope rate setting: per kind, one rate for all, both, and
// the window.
func TestRateSettings(t *testing.T) {
	tests := []struct {
		in       string
		window   string
		perScope int
		perKind  map[scope.Kind]int
		wantWin  time.Duration
	}{
		{"", "", 0, nil, time.Minute},
		{"30", "2s", 30, nil, 2 * time.Second},
		{"Department=4, subscription=20", "", 0, map[scope.Kind]int{scope.Department: 4, scope.Subscription: 20}, time.Minute},
		{"12,managementGroup=1", "500ms", 12, map[scope.Kind]int{scope.ManagementGroup: 1}, 500 * time.Millisecond},
	}
	for _, tt := range tests {
		c, err := Load(lookup(map[string]string{EnvScopes: "/subscriptions/abc", EnvOutputDir: "out", EnvRatePerScope: tt.in, EnvRateWindow: tt.window}), true, true)
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if c.RatePerScope != tt.perScope || !maps.Equal(c.RatePerKind, tt.perKind) || c.RateWindow != tt.wantWin {
			t.Errorf("%q, %q: got %d %v %s, want %d %v %s", tt.in, tt.window, c.RatePerScope, c.RatePerKind, c.RateWindow, tt.perScope, tt.perKind, tt.wantWin)
		}
	}
}

func TestExpandNone(t *testing.T) {
	c, err := Load(lookup(map[string]string{EnvScopes: "/subscriptions/abc", EnvOutputDir: "out", EnvExpand: "NONE"}), true, true)
	if err != nil || c.Expand != consumption.ExpandNone {
		t.Errorf("Expand = %q, %v; want %q", c.Expand, err, consumption.ExpandNone)
	}
}

// TestErrorChain checks that Load's error keeps every problem as its own error: errors.As finds
// each *SettingError, and errors.Is the causes below them (a scope's ErrInvalid).
func TestErrorChain(t *testing.T) {
	_, err := Load(lookup(map[string]string{
		EnvScopes:     "/providers/Microsoft.Billing/bogus/1",
		EnvGzip:       "maybe",
		EnvPartDays:   "0",
		EnvOutputDir:  "out",
		EnvToken:      "t",
		EnvTokenFile:  "f",
		EnvAPIVersion: "2018-06-30",
		EnvMetric:     "usage",
	}), true, true)
	var all *Error
	if !errors.As(err, &all) {
		t.Fatalf("err %T %v, want *Error", err, err)
	}
	var got []string
	for _, e := range all.Unwrap() {
		var se *SettingError
		if !errors.As(e, &se) {
			t.Fatalf("problem %T %v is not a *SettingError", e, e)
		}
		got = append(got, se.Setting)
	}
	want := []string{EnvScopes, EnvToken, EnvGzip, EnvPartDays, EnvMetric}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("problems of %v, want %v:\n%v", got, want, err)
	}
	if !errors.Is(err, scope.ErrInvalid) {
		t.Errorf("errors.Is(err, scope.ErrInvalid) = false: %v", err)
	}
	for _, line := range []string{"invalid settings:\n  USAGE_EXPORT_SCOPES: invalid scope", "\n  USAGE_EXPORT_GZIP: \"maybe\" is not true or false\n",
		"\n  USAGE_EXPORT_TOKEN: set either USAGE_EXPORT_TOKEN or USAGE_EXPORT_TOKEN_FILE, not both"} {
		if !strings.Contains(err.Error(), line) {
			t.Errorf("message lacks %q:\n%s", line, err)
		}
	}
}

// TestTableDefaults checks that every row's Default is a value its parser takes, and that an
// empty environment loads to the defaults the table names.
func TestTableDefaults(t *testing.T) {
	for _, s := range Settings {
		if s.parse == nil || s.Default == "" {
			continue
		}
		if err := s.parse(&Config{}, s.Default); err != nil {
			t.Errorf("%s: default %q: %v", s.Env, s.Default, err)
		}
	}
	c, err := Load(lookup(nil), false, false)
	if err != nil {
		t.Fatal(err)
	}
	if c.LeaseSeconds != DefaultLeaseSeconds || c.Concurrency != DefaultConcurrency || c.MaxMonths != DefaultMaxMonths ||
		c.LogLevel != DefaultLogLevel || c.Schedule != DefaultSchedule || c.Source != DefaultSource || c.RateWindow != DefaultRateWindow {
		t.Errorf("defaults: %+v", c)
	}
}
