package config

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestEverySettingInTable parses the package's sources and checks that every USAGE_EXPORT_*
// constant has a row in Settings, so a new setting cannot be reported as unknown.
func TestEverySettingInTable(t *testing.T) {
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, en := range entries {
		if !strings.HasSuffix(en.Name(), ".go") || strings.HasSuffix(en.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), en.Name(), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	seen := 0
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			v, _ := strconv.Unquote(lit.Value)
			if !strings.HasPrefix(v, Prefix) || v == Prefix || strings.ContainsAny(v, " %") || slices.Contains(toolNames, v) {
				return true
			}
			seen++
			found := false
			for _, s := range Settings {
				found = found || s.Env == v
			}
			if !found {
				t.Errorf("%s is a setting name but has no row in Settings", v)
			}
			return true
		})
	}
	if seen < 20 {
		t.Errorf("found %d setting names in the sources, want the package's constants", seen)
	}
	flags := map[string]bool{}
	for _, s := range Settings {
		if s.Flag != "" && flags[s.Flag] {
			t.Errorf("flag --%s used twice", s.Flag)
		}
		flags[s.Flag] = true
	}
}

func TestUnknownNames(t *testing.T) {
	errs := UnknownNames([]string{
		EnvScopes + "=/subscriptions/a",
		"USAGE_EXPORT_METRICS=amortizedcost",
		"USAGE_EXPORT_CONTAINR=x",
		"USAGE_EXPORT_SOMETHING_ELSE_ENTIRELY=1",
		"PATH=/bin",
		"USAGE_EXPORT_FAULTS=1",
	})
	if len(errs) != 3 {
		t.Fatalf("got %d errors, want 3: %v", len(errs), errs)
	}
	for i, want := range []string{
		"USAGE_EXPORT_METRICS: is not a setting of Usage Export; did you mean USAGE_EXPORT_METRIC?",
		"USAGE_EXPORT_CONTAINR: is not a setting of Usage Export; did you mean USAGE_EXPORT_CONTAINER?",
		"USAGE_EXPORT_SOMETHING_ELSE_ENTIRELY: is not a setting of Usage Export",
	} {
		if errs[i].Error() != want {
			t.Errorf("error %d = %q, want %q", i, errs[i], want)
		}
	}
}

// TestFlagsWin checks that a flag wins over the environment, including the environment value of
// another setting of its group.
func TestFlagsWin(t *testing.T) {
	env := lookup(map[string]string{
		EnvStorageConnection: "UseDevelopmentStorage=true",
		EnvToken:             "secret",
		EnvContainer:         "from-env",
		EnvScopes:            "/subscriptions/a",
	})
	for _, tc := range []struct {
		name  string
		flags map[string]string
		check func(*Config) bool
	}{
		{"output-dir over a connection string", map[string]string{EnvOutputDir: "out"},
			func(c *Config) bool { return c.OutputDir == "out" && c.StorageConnection == "" }},
		{"token file over a token", map[string]string{EnvTokenFile: "tok"},
			func(c *Config) bool { return c.TokenFile == "tok" && c.Token == "" }},
		{"container", map[string]string{EnvContainer: "from-flag"},
			func(c *Config) bool { return c.Container == "from-flag" && c.StorageConnection != "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(Lookup(tc.flags, env), true, true)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Errorf("config %+v", c)
			}
		})
	}
}

func TestEndpointOptIn(t *testing.T) {
	for _, tc := range []struct {
		endpoint, allow string
		ok              bool
	}{
		{"https://management.azure.com", "", true},
		{"https://management.chinacloudapi.cn", "", true},
		{"https://MANAGEMENT.usgovcloudapi.net/", "", true},
		{"http://127.0.0.1:8080", "", true},
		{"https://localhost:8443", "", true},
		{"https://attacker.example.net", "", false},
		{"https://management.azure.com.example.net", "", false},
		{"https://attacker.example.net", "true", true},
		{"http://attacker.example.net", "true", false}, // http stays loopback-only
	} {
		m := map[string]string{EnvManagementEndpoint: tc.endpoint}
		if tc.allow != "" {
			m[EnvAllowCustomEndpoint] = tc.allow
		}
		_, err := Load(lookup(m), false, false)
		if (err == nil) != tc.ok {
			t.Errorf("%s (allow %q): err = %v, want ok %v", tc.endpoint, tc.allow, err, tc.ok)
		}
		if err != nil && tc.allow == "" && tc.ok == false && !strings.Contains(err.Error(), EnvAllowCustomEndpoint) {
			t.Errorf("%s: the error does not name the opt-in: %v", tc.endpoint, err)
		}
	}
}

func TestMetricDidYouMean(t *testing.T) {
	_, err := Load(lookup(map[string]string{EnvMetric: "amortisedcost"}), false, false)
	if err == nil || !strings.Contains(err.Error(), "did you mean amortizedcost?") {
		t.Errorf("err = %v", err)
	}
}
