package config

import (
	"slices"
	"strings"
	"testing"
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
		!c.Gzip || c.PartDays != 1 || c.RatePerScope != 30 || c.RatePerTenant != 200 || c.DropGuard != 0.5 ||
		c.RestatementDays != 5 || c.Metrics[0] != "actualcost" || c.Expand != "additionalInfo" || c.ManagementEndpoint != DefaultManagementEndpoint {
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
		EnvOutputDir:          "out",
		EnvStorageConnection:  "UseDevelopmentStorage=true",
	}), true, true)
	if err == nil {
		t.Fatal("no error")
	}
	for _, name := range []string{EnvScopes, EnvAPIVersion, EnvMetric, EnvRestatementDays, EnvManagementEndpoint, EnvPrefix,
		EnvContainer, EnvDropGuard, EnvGzip, EnvSchedule, EnvLogLevel, "output"} {
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
		want   []string
	}{
		{"", []string{"actualcost", "amortizedcost"}},
		{"usage", []string{"usage", "actualcost", "amortizedcost"}},
		{"amortizedcost,actualcost", []string{"amortizedcost", "actualcost"}},
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
