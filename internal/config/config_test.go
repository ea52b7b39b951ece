package config

import (
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
