// Package infra_test checks the Terraform configuration in this folder without
// Terraform: it parses the HCL and works out which app settings each function app
// resource is given, then checks them against what the handler requires and what Flex
// Consumption forbids. `make infra-validate` checks the same through Terraform itself
// (tests/app_settings.tftest.hcl, with a mocked provider).
package infra_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// Resource addresses of the two function app variants.
const (
	flexApp    = "azurerm_function_app_flex_consumption.main"
	classicApp = "azurerm_linux_function_app.main"
)

// handlerRequired are the settings the handler cannot run in Azure without.
var handlerRequired = []string{
	"USAGE_EXPORT_SCOPES",
	"USAGE_EXPORT_STORAGE_ACCOUNT_URL",
	"AZURE_CLIENT_ID",
	// The worker's queueTrigger resolves %USAGE_EXPORT_QUEUE%; without it the host cannot
	// index the function.
	"USAGE_EXPORT_QUEUE",
}

// handlerOptional are the settings the handler reads with a default; the template
// exposes each of them as a variable.
var handlerOptional = []string{
	"USAGE_EXPORT_CONTAINER",
	"USAGE_EXPORT_PREFIX",
	"USAGE_EXPORT_SCHEDULE",
	"USAGE_EXPORT_API_VERSION",
	"USAGE_EXPORT_METRIC",
	"USAGE_EXPORT_RESTATEMENT_DAYS",
	"USAGE_EXPORT_MANAGEMENT_ENDPOINT",
	"USAGE_EXPORT_COSTDETAILS_SCOPES",
	"USAGE_EXPORT_GZIP",
	"USAGE_EXPORT_PART_DAYS",
	"USAGE_EXPORT_RATE_PER_SCOPE",
	"USAGE_EXPORT_RATE_PER_TENANT",
	"USAGE_EXPORT_CONCURRENCY",
	"USAGE_EXPORT_LEASE_SECONDS",
	"USAGE_EXPORT_MAX_MONTHS",
	"USAGE_EXPORT_DROP_GUARD",
	"USAGE_EXPORT_ROW_KEY",
	"USAGE_EXPORT_FOCUS",
	"USAGE_EXPORT_LOG_LEVEL",
	"USAGE_EXPORT_EXPAND",
}

// hostRequired are the identity-based host settings both variants need in app_settings.
// AzureWebJobsStorage__accountName is checked separately: the classic resource writes
// it from storage_account_name.
var hostRequired = []string{
	"AzureWebJobsStorage__credential",
	"AzureWebJobsStorage__clientId",
	"APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
	"AzureFunctionsJobHost__functionTimeout",
}

// neverSet are settings the template must not set on any plan: secrets, and the
// connection-string form of the host storage that would override the identity.
var neverSet = []string{
	"USAGE_EXPORT_STORAGE_CONNECTION",
	"AzureWebJobsStorage",
	"APPINSIGHTS_INSTRUMENTATIONKEY",
}

// flexForbidden reports whether Flex Consumption rejects or ignores an app setting
// (see the Functions host reference: these are properties of the app on Flex).
func flexForbidden(name string) bool {
	switch name {
	case "FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "WEBSITE_RUN_FROM_PACKAGE",
		"WEBSITE_TIME_ZONE", "WEBSITE_NODE_DEFAULT_VERSION", "FUNCTIONS_WORKER_RUNTIME_VERSION":
		return true
	}
	return strings.HasPrefix(name, "WEBSITE_CONTENT")
}

// keySet is what an app_settings expression sets: always holds keys set on every
// evaluation, maybe those set on at least one (a superset of always).
type keySet struct {
	always map[string]bool
	maybe  map[string]bool
}

func newKeySet(keys ...string) keySet {
	s := keySet{always: map[string]bool{}, maybe: map[string]bool{}}
	for _, k := range keys {
		s.always[k] = true
		s.maybe[k] = true
	}
	return s
}

func (s keySet) union(o keySet) keySet {
	for k := range o.always {
		s.always[k] = true
	}
	for k := range o.maybe {
		s.maybe[k] = true
	}
	return s
}

// module is the parsed configuration: locals, resources and variables by name.
type module struct {
	locals    map[string]hclsyntax.Expression
	resources map[string]*hclsyntax.Block
	variables map[string]*hclsyntax.Block
}

func parseModule(files map[string][]byte) (*module, error) {
	m := &module{
		locals:    map[string]hclsyntax.Expression{},
		resources: map[string]*hclsyntax.Block{},
		variables: map[string]*hclsyntax.Block{},
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		f, diags := hclsyntax.ParseConfig(files[name], name, hcl.InitialPos)
		if diags.HasErrors() {
			return nil, fmt.Errorf("parse %s: %w", name, diags)
		}
		for _, b := range f.Body.(*hclsyntax.Body).Blocks {
			switch b.Type {
			case "locals":
				for n, a := range b.Body.Attributes {
					if _, dup := m.locals[n]; dup {
						return nil, fmt.Errorf("parse %s: local.%s defined twice", name, n)
					}
					m.locals[n] = a.Expr
				}
			case "resource":
				m.resources[b.Labels[0]+"."+b.Labels[1]] = b
			case "variable":
				m.variables[b.Labels[0]] = b
			}
		}
	}
	return m, nil
}

func loadModule(t *testing.T) *module {
	t.Helper()
	paths, err := filepath.Glob("*.tf")
	if err != nil || len(paths) == 0 {
		t.Fatalf("glob *.tf: %v (found %d files)", err, len(paths))
	}
	files := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("read %s: %v", p, err)
		}
		files[p] = b
	}
	m, err := parseModule(files)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// keys works out which keys an app_settings expression sets. It follows merge(),
// conditionals (a key in one branch only is a "maybe"), parentheses and local.* references;
// anything else is an error, so that the check never passes by not understanding.
func (m *module) keys(expr hclsyntax.Expression, seen map[string]bool) (keySet, error) {
	switch e := expr.(type) {
	case *hclsyntax.ObjectConsExpr:
		s := newKeySet()
		for _, item := range e.Items {
			v, diags := item.KeyExpr.Value(nil)
			if diags.HasErrors() || !v.IsKnown() || v.IsNull() || v.Type() != cty.String {
				return keySet{}, fmt.Errorf("keys: non-literal key at %s", item.KeyExpr.Range())
			}
			s.always[v.AsString()] = true
			s.maybe[v.AsString()] = true
		}
		return s, nil
	case *hclsyntax.FunctionCallExpr:
		if e.Name != "merge" {
			return keySet{}, fmt.Errorf("keys: unsupported function %s() at %s", e.Name, e.Range())
		}
		s := newKeySet()
		for _, arg := range e.Args {
			a, err := m.keys(arg, seen)
			if err != nil {
				return keySet{}, err
			}
			s = s.union(a)
		}
		return s, nil
	case *hclsyntax.ConditionalExpr:
		t, err := m.keys(e.TrueResult, seen)
		if err != nil {
			return keySet{}, err
		}
		f, err := m.keys(e.FalseResult, seen)
		if err != nil {
			return keySet{}, err
		}
		s := newKeySet()
		for k := range t.always {
			if f.always[k] {
				s.always[k] = true
			}
		}
		for k := range t.maybe {
			s.maybe[k] = true
		}
		for k := range f.maybe {
			s.maybe[k] = true
		}
		return s, nil
	case *hclsyntax.ParenthesesExpr:
		return m.keys(e.Expression, seen)
	case *hclsyntax.ScopeTraversalExpr:
		if len(e.Traversal) != 2 || e.Traversal.RootName() != "local" {
			return keySet{}, fmt.Errorf("keys: unsupported reference at %s", e.Range())
		}
		attr, ok := e.Traversal[1].(hcl.TraverseAttr)
		if !ok {
			return keySet{}, fmt.Errorf("keys: unsupported reference at %s", e.Range())
		}
		if seen[attr.Name] {
			return keySet{}, fmt.Errorf("keys: local.%s refers to itself", attr.Name)
		}
		def, ok := m.locals[attr.Name]
		if !ok {
			return keySet{}, fmt.Errorf("keys: local.%s is not defined", attr.Name)
		}
		next := map[string]bool{attr.Name: true}
		for k := range seen {
			next[k] = true
		}
		return m.keys(def, next)
	}
	return keySet{}, fmt.Errorf("keys: unsupported expression %T at %s", expr, expr.Range())
}

// appSettings returns the keys a resource's app_settings sets.
func (m *module) appSettings(addr string) (keySet, error) {
	r, ok := m.resources[addr]
	if !ok {
		return keySet{}, fmt.Errorf("app settings: no resource %s", addr)
	}
	a, ok := r.Body.Attributes["app_settings"]
	if !ok {
		return keySet{}, fmt.Errorf("app settings: %s has no app_settings", addr)
	}
	return m.keys(a.Expr, map[string]bool{})
}

// attribute returns an attribute of a resource, following nested blocks (the first of each
// type): attribute(r, "site_config", "application_stack", "use_custom_runtime").
func attribute(r *hclsyntax.Block, path ...string) (*hclsyntax.Attribute, error) {
	body := r.Body
	for _, blockType := range path[:len(path)-1] {
		var next *hclsyntax.Body
		for _, b := range body.Blocks {
			if b.Type == blockType {
				next = b.Body
				break
			}
		}
		if next == nil {
			return nil, fmt.Errorf("no %s block in %s", blockType, strings.Join(path, "."))
		}
		body = next
	}
	a, ok := body.Attributes[path[len(path)-1]]
	if !ok {
		return nil, fmt.Errorf("%s is not set", strings.Join(path, "."))
	}
	return a, nil
}

// literal returns the literal value of an attribute of a resource (see attribute).
func literal(r *hclsyntax.Block, path ...string) (cty.Value, error) {
	a, err := attribute(r, path...)
	if err != nil {
		return cty.NilVal, fmt.Errorf("literal: %w", err)
	}
	v, diags := a.Expr.Value(nil)
	if diags.HasErrors() {
		return cty.NilVal, fmt.Errorf("literal: %s is not a literal: %w", strings.Join(path, "."), diags)
	}
	return v, nil
}

// hasAttr reports whether an attribute is set (to any expression) on a resource.
func hasAttr(r *hclsyntax.Block, path ...string) bool {
	_, err := attribute(r, path...)
	return err == nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestKeysAnalysis(t *testing.T) {
	tests := []struct {
		name       string
		src        string
		wantAlways []string
		wantMaybe  []string
		wantErr    string
	}{
		{
			name:       "literal object with quoted and bare keys",
			src:        `resource "x" "main" { app_settings = { A = "1", "B__c" = var.b } }`,
			wantAlways: []string{"A", "B__c"},
			wantMaybe:  []string{"A", "B__c"},
		},
		{
			name: "merge of locals",
			src: `locals {
				one = { A = "1" }
				two = merge(local.one, { B = "2" })
			}
			resource "x" "main" { app_settings = merge(local.two, { C = "3" }) }`,
			wantAlways: []string{"A", "B", "C"},
			wantMaybe:  []string{"A", "B", "C"},
		},
		{
			name:       "conditional keys are maybe",
			src:        `resource "x" "main" { app_settings = merge({ A = "1" }, var.on ? { B = "2", A = "3" } : { A = "4" }) }`,
			wantAlways: []string{"A"},
			wantMaybe:  []string{"A", "B"},
		},
		{
			name:    "computed key is refused",
			src:     `resource "x" "main" { app_settings = { (var.k) = "1" } }`,
			wantErr: "non-literal key",
		},
		{
			name:    "unknown function is refused",
			src:     `resource "x" "main" { app_settings = tomap({ A = "1" }) }`,
			wantErr: "unsupported function tomap()",
		},
		{
			name:    "variable is refused",
			src:     `resource "x" "main" { app_settings = var.settings }`,
			wantErr: "unsupported reference",
		},
		{
			name:    "undefined local",
			src:     `resource "x" "main" { app_settings = local.nope }`,
			wantErr: "local.nope is not defined",
		},
		{
			name: "self reference",
			src: `locals { a = merge(local.a, {}) }
			resource "x" "main" { app_settings = local.a }`,
			wantErr: "local.a refers to itself",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := parseModule(map[string][]byte{"main.tf": []byte(tt.src)})
			if err != nil {
				t.Fatal(err)
			}
			got, err := m.appSettings("x.main")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("appSettings error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("appSettings: %v", err)
			}
			if a := sortedKeys(got.always); !slices.Equal(a, tt.wantAlways) {
				t.Errorf("always = %v, want %v", a, tt.wantAlways)
			}
			if mb := sortedKeys(got.maybe); !slices.Equal(mb, tt.wantMaybe) {
				t.Errorf("maybe = %v, want %v", mb, tt.wantMaybe)
			}
		})
	}
}

func TestFlexForbidden(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"FUNCTIONS_WORKER_RUNTIME", true},
		{"FUNCTIONS_EXTENSION_VERSION", true},
		{"WEBSITE_RUN_FROM_PACKAGE", true},
		{"WEBSITE_CONTENTSHARE", true},
		{"WEBSITE_CONTENTAZUREFILECONNECTIONSTRING", true},
		{"WEBSITE_TIME_ZONE", true},
		{"USAGE_EXPORT_SCOPES", false},
		{"AzureWebJobsStorage__accountName", false},
		{"AzureFunctionsJobHost__functionTimeout", false},
	}
	for _, tt := range tests {
		if got := flexForbidden(tt.name); got != tt.want {
			t.Errorf("flexForbidden(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// checkSettings returns one message per problem with a resource's settings.
func checkSettings(got keySet, required []string, forbidden func(string) bool) []string {
	var problems []string
	for _, k := range required {
		if !got.always[k] {
			problems = append(problems, "required setting "+k+" is not always set")
		}
	}
	for _, k := range handlerOptional {
		if !got.maybe[k] {
			problems = append(problems, "handler setting "+k+" is not exposed")
		}
	}
	for _, k := range neverSet {
		if got.maybe[k] {
			problems = append(problems, "setting "+k+" must never be set")
		}
	}
	for _, k := range sortedKeys(got.maybe) {
		if forbidden != nil && forbidden(k) {
			problems = append(problems, "setting "+k+" is forbidden on this plan")
		}
	}
	return problems
}

func TestCheckSettingsFindsProblems(t *testing.T) {
	all := append(append([]string{}, handlerRequired...), handlerOptional...)
	tests := []struct {
		name string
		set  keySet
		want []string
	}{
		{"complete", newKeySet(all...), nil},
		{"required only maybe", func() keySet {
			s := newKeySet(all[1:]...)
			s.maybe[all[0]] = true
			return s
		}(), []string{"required setting USAGE_EXPORT_SCOPES is not always set"}},
		{"optional missing", newKeySet(all[:len(all)-1]...), []string{"handler setting USAGE_EXPORT_EXPAND is not exposed"}},
		{"secret set", newKeySet(append(all, "USAGE_EXPORT_STORAGE_CONNECTION")...), []string{"setting USAGE_EXPORT_STORAGE_CONNECTION must never be set"}},
		{"forbidden set", newKeySet(append(all, "WEBSITE_CONTENTSHARE")...), []string{"setting WEBSITE_CONTENTSHARE is forbidden on this plan"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := checkSettings(tt.set, handlerRequired, flexForbidden)
			if !slices.Equal(got, tt.want) {
				t.Errorf("checkSettings = %q, want %q", got, tt.want)
			}
		})
	}
}

// wantLiteral is the literal value an attribute of a resource must have.
type wantLiteral struct {
	path []string
	want cty.Value
}

// checkResource fails t for each attribute of r (named addr) that does not have its literal value
// in literals, and for each path in set that is not set.
func checkResource(t *testing.T, addr string, r *hclsyntax.Block, literals []wantLiteral, set [][]string) {
	t.Helper()
	for _, w := range literals {
		v, err := literal(r, w.path...)
		if err != nil {
			t.Errorf("%s: %v", addr, err)
			continue
		}
		if !v.RawEquals(w.want) {
			t.Errorf("%s.%s = %#v, want %#v", addr, strings.Join(w.path, "."), v, w.want)
		}
	}
	for _, path := range set {
		if !hasAttr(r, path...) {
			t.Errorf("%s: %s is not set", addr, strings.Join(path, "."))
		}
	}
}

func TestFlexAppSettings(t *testing.T) {
	m := loadModule(t)
	got, err := m.appSettings(flexApp)
	if err != nil {
		t.Fatal(err)
	}
	required := append(append(append([]string{}, handlerRequired...), hostRequired...), "AzureWebJobsStorage__accountName")
	for _, p := range checkSettings(got, required, flexForbidden) {
		t.Error(p)
	}

	r := m.resources[flexApp]
	checkResource(t, flexApp, r, []wantLiteral{
		{[]string{"runtime_name"}, cty.StringVal("custom")},
		{[]string{"runtime_version"}, cty.StringVal("1.0")},
		{[]string{"storage_container_type"}, cty.StringVal("blobContainer")},
		{[]string{"storage_authentication_type"}, cty.StringVal("UserAssignedIdentity")},
		{[]string{"https_only"}, cty.True},
		{[]string{"identity", "type"}, cty.StringVal("UserAssigned")},
	}, [][]string{
		{"site_config", "application_insights_connection_string"},
		{"storage_user_assigned_identity_id"},
		{"storage_container_endpoint"},
	})
	if hasAttr(r, "storage_access_key") {
		t.Errorf("%s: storage_access_key is set; deployment storage must use the identity", flexApp)
	}
}

func TestClassicAppSettings(t *testing.T) {
	m := loadModule(t)
	got, err := m.appSettings(classicApp)
	if err != nil {
		t.Fatal(err)
	}
	required := append(append(append([]string{}, handlerRequired...), hostRequired...),
		"WEBSITE_RUN_FROM_PACKAGE", "WEBSITE_RUN_FROM_PACKAGE_BLOB_MI_RESOURCE_ID")
	// Content shares need a shared key, which the host account does not allow.
	noContentShare := func(k string) bool { return strings.HasPrefix(k, "WEBSITE_CONTENT") }
	for _, p := range checkSettings(got, required, noContentShare) {
		t.Error(p)
	}

	r := m.resources[classicApp]
	checkResource(t, classicApp, r, []wantLiteral{
		{[]string{"storage_uses_managed_identity"}, cty.True},
		{[]string{"functions_extension_version"}, cty.StringVal("~4")},
		{[]string{"site_config", "application_stack", "use_custom_runtime"}, cty.True},
		{[]string{"https_only"}, cty.True},
		{[]string{"identity", "type"}, cty.StringVal("UserAssigned")},
	}, [][]string{
		{"storage_account_name"},
		{"site_config", "application_insights_connection_string"},
	})
	if hasAttr(r, "storage_account_access_key") {
		t.Errorf("%s: storage_account_access_key is set; host storage must use the identity", classicApp)
	}
}

// parseTimeout parses [d.]hh:mm:ss into seconds.
func parseTimeout(s string) (int, error) {
	days := 0
	if i := strings.IndexByte(s, '.'); i >= 0 {
		if _, err := fmt.Sscanf(s[:i], "%d", &days); err != nil {
			return 0, fmt.Errorf("parse timeout %q: %w", s, err)
		}
		s = s[i+1:]
	}
	var h, m, sec int
	if n, err := fmt.Sscanf(s, "%d:%d:%d", &h, &m, &sec); err != nil || n != 3 {
		return 0, errors.Join(fmt.Errorf("parse timeout %q", s), err)
	}
	return ((days*24+h)*60+m)*60 + sec, nil
}

func TestDefaultFunctionTimeouts(t *testing.T) {
	const (
		consumptionMax = 10 * 60 // seconds; the Consumption plan's hard limit
		scaleInGrace   = 60 * 60 // seconds a running execution gets on scale-in elsewhere
		partition      = 10 * 60 // seconds; a worker invocation needs at least this for a large partition
	)
	m := loadModule(t)
	expr, ok := m.locals["default_function_timeout"]
	if !ok {
		t.Fatal("local.default_function_timeout is not defined")
	}
	v, diags := expr.Value(nil)
	if diags.HasErrors() {
		t.Fatalf("local.default_function_timeout is not a literal: %v", diags)
	}
	plans := m.variables["hosting_plan"]
	if plans == nil {
		t.Fatal("variable hosting_plan is not declared")
	}
	for _, plan := range []string{"flex", "consumption", "premium"} {
		if !v.Type().IsObjectType() || !v.Type().HasAttribute(plan) {
			t.Errorf("default_function_timeout has no entry for %s", plan)
			continue
		}
		secs, err := parseTimeout(v.GetAttr(plan).AsString())
		if err != nil {
			t.Errorf("%s: %v", plan, err)
			continue
		}
		switch {
		case plan == "consumption" && secs > consumptionMax:
			t.Errorf("consumption timeout = %ds, want at most %ds", secs, consumptionMax)
		case plan != "consumption" && (secs < partition || secs > scaleInGrace):
			t.Errorf("%s timeout = %ds, want %d..%ds (within the scale-in grace)", plan, secs, partition, scaleInGrace)
		}
	}
}

func TestParseTimeout(t *testing.T) {
	tests := []struct {
		in      string
		want    int
		wantErr bool
	}{
		{"00:10:00", 600, false},
		{"02:00:00", 7200, false},
		{"1.00:00:00", 86400, false},
		{"ten minutes", 0, true},
	}
	for _, tt := range tests {
		got, err := parseTimeout(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseTimeout(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestVariablesDocumentedAndTyped(t *testing.T) {
	m := loadModule(t)
	if len(m.variables) == 0 {
		t.Fatal("no variables declared")
	}
	for name, b := range m.variables {
		if _, ok := b.Body.Attributes["type"]; !ok {
			t.Errorf("variable %s has no type", name)
		}
		d, err := literal(b, "description")
		if err != nil || d.Type() != cty.String || len(strings.TrimSpace(d.AsString())) == 0 {
			t.Errorf("variable %s has no description", name)
		}
	}
}

// TestStripRunsOnEveryApply: the provider re-injects AzureWebJobsStorage and
// DEPLOYMENT_STORAGE_CONNECTION_STRING on every update of the Flex app, so the clean-up must be
// replaced (and its provisioner run) at every apply, after the app: its triggers must hold a
// value that is new at each plan, it must depend on the app, it must delete both settings, and
// it must be on by default for flex.
func TestStripRunsOnEveryApply(t *testing.T) {
	m := loadModule(t)
	r, ok := m.resources["terraform_data.strip_injected_settings"]
	if !ok {
		t.Fatal("terraform_data.strip_injected_settings is missing")
	}
	trig, ok := r.Body.Attributes["triggers_replace"]
	if !ok {
		t.Fatal("strip_injected_settings has no triggers_replace: it would run once, at create")
	}
	perPlan := false
	hclsyntax.VisitAll(trig.Expr, func(n hclsyntax.Node) hcl.Diagnostics {
		if f, ok := n.(*hclsyntax.FunctionCallExpr); ok && (f.Name == "plantimestamp" || f.Name == "timestamp") {
			perPlan = true
		}
		return nil
	})
	if !perPlan {
		t.Error("triggers_replace holds no plantimestamp()/timestamp(): the clean-up would run only when its other triggers change, not after every apply")
	}
	dependsOnApp := false
	if a, ok := r.Body.Attributes["depends_on"]; ok {
		for _, tr := range a.Expr.Variables() {
			if strings.HasPrefix(hclTraversalString(tr), "azurerm_function_app_flex_consumption.main") {
				dependsOnApp = true
			}
		}
	}
	for _, tr := range trig.Expr.Variables() {
		if strings.HasPrefix(hclTraversalString(tr), "azurerm_function_app_flex_consumption.main") {
			dependsOnApp = true
		}
	}
	if !dependsOnApp {
		t.Error("strip_injected_settings does not depend on the Flex app: it could run before the update that re-injects the settings")
	}
	var cmd string
	for _, b := range r.Body.Blocks {
		if b.Type == "provisioner" && len(b.Labels) == 1 && b.Labels[0] == "local-exec" {
			if a, ok := b.Body.Attributes["command"]; ok {
				if v, diags := a.Expr.Value(nil); !diags.HasErrors() && v.Type() == cty.String {
					cmd = v.AsString()
				}
			}
		}
	}
	for _, name := range []string{"AzureWebJobsStorage", "DEPLOYMENT_STORAGE_CONNECTION_STRING"} {
		if !strings.Contains(cmd, "appsettings delete") || !strings.Contains(cmd, name) {
			t.Errorf("the clean-up command %q does not delete %s", cmd, name)
		}
	}
	v := m.variables["strip_provider_injected_settings"]
	if v == nil {
		t.Fatal("variable strip_provider_injected_settings is missing")
	}
	if d, ok := v.Body.Attributes["default"]; !ok {
		t.Error("strip_provider_injected_settings has no default")
	} else if val, diags := d.Expr.Value(nil); diags.HasErrors() || !val.RawEquals(cty.True) {
		t.Error("strip_provider_injected_settings must default to true")
	}
}

// hclTraversalString renders a traversal's root and attribute names, e.g. "a.b.c".
func hclTraversalString(tr hcl.Traversal) string {
	var parts []string
	for _, s := range tr {
		switch x := s.(type) {
		case hcl.TraverseRoot:
			parts = append(parts, x.Name)
		case hcl.TraverseAttr:
			parts = append(parts, x.Name)
		}
	}
	return strings.Join(parts, ".")
}

// TestWorkQueue: the queues exist on the host account and the identity may use them.
func TestWorkQueue(t *testing.T) {
	m := loadModule(t)
	for _, name := range []string{"azurerm_storage_queue.work", "azurerm_storage_queue.poison"} {
		r, ok := m.resources[name]
		if !ok {
			t.Errorf("%s is missing", name)
			continue
		}
		a, ok := r.Body.Attributes["storage_account_id"]
		if !ok || !strings.Contains(hclTraversalString(a.Expr.Variables()[0]), "local.host_account") {
			t.Errorf("%s is not on the host storage account", name)
		}
	}
	if _, ok := m.resources["azurerm_role_assignment.app"]; !ok {
		t.Fatal("azurerm_role_assignment.app (the identity's roles, from local.app_roles) is missing")
	}
	queue, ok := objectItem(m.locals["app_roles"], "host_queue")
	if !ok {
		t.Fatal("local.app_roles has no host_queue entry")
	}
	role, _ := objectItem(queue, "role")
	if v, diags := role.Value(nil); diags.HasErrors() || !v.RawEquals(cty.StringVal("Storage Queue Data Contributor")) {
		t.Errorf("host_queue role = %v (%v), want Storage Queue Data Contributor", v, diags)
	}
	scope, _ := objectItem(queue, "scope")
	if vars := scope.Variables(); len(vars) != 1 || !strings.HasPrefix(hclTraversalString(vars[0]), "local.host_account") {
		t.Error("host_queue role is not granted on the host storage account")
	}
	enabled, _ := objectItem(queue, "enabled")
	if v, diags := enabled.Value(nil); diags.HasErrors() || !v.RawEquals(cty.True) {
		t.Errorf("host_queue role enabled = %v (%v), want true", v, diags)
	}
}

// objectItem returns the value of the item named key of an object constructor expression
// ({ key = value, … }); ok is false when expr is not one or has no such item. A missing item's
// value is an expression that evaluates with an error, so a caller may use it unchecked.
func objectItem(expr hclsyntax.Expression, key string) (v hclsyntax.Expression, ok bool) {
	missing := &hclsyntax.ScopeTraversalExpr{Traversal: hcl.Traversal{hcl.TraverseRoot{Name: "missing_" + key}}}
	obj, isObj := expr.(*hclsyntax.ObjectConsExpr)
	if !isObj {
		return missing, false
	}
	for _, item := range obj.Items {
		k, diags := item.KeyExpr.Value(nil)
		if !diags.HasErrors() && k.Type() == cty.String && k.AsString() == key {
			return item.ValueExpr, true
		}
	}
	return missing, false
}
