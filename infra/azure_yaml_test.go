package infra_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// Files checked here, relative to this folder.
const (
	azureYAMLPath  = "../azure.yaml"
	azureSchema    = "azure.yaml.schema.json"
	azdTfvarsPath  = "main.tfvars.json"
	azdServiceVar  = "azd_service_name"
	azdPackageRoot = ".build/"
)

func compileAzureSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open(azureSchema)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatalf("parse %s: %v", azureSchema, err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(azureSchema, doc); err != nil {
		t.Fatalf("add %s: %v", azureSchema, err)
	}
	s, err := c.Compile(azureSchema)
	if err != nil {
		t.Fatalf("compile %s: %v", azureSchema, err)
	}
	return s
}

// yamlToJSON decodes YAML and re-reads it as JSON so the validator sees JSON types.
func yamlToJSON(src []byte) (any, error) {
	var v any
	if err := yaml.Unmarshal(src, &v); err != nil {
		return nil, err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(b))
}

func readAzureYAML(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(azureYAMLPath)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAzureYAMLSchema(t *testing.T) {
	schema := compileAzureSchema(t)
	good := string(readAzureYAML(t))
	tests := []struct {
		name    string
		src     string
		wantErr bool
	}{
		{name: "repository azure.yaml", src: good},
		{name: "bicep provider", src: strings.Replace(good, "provider: terraform", "provider: bicep", 1), wantErr: true},
		{name: "app service host", src: strings.Replace(good, "host: function", "host: appservice", 1), wantErr: true},
		{name: "python language", src: strings.Replace(good, "language: custom", "language: python", 1), wantErr: true},
		{name: "dist not a zip", src: strings.Replace(good, "dist: .build/usage-export.zip", "dist: .build/package", 1), wantErr: true},
		{name: "no dist", src: strings.Replace(good, "    dist: .build/usage-export.zip\n", "", 1), wantErr: true},
		{name: "unknown service field", src: strings.Replace(good, "    host: function\n", "    host: function\n    docker: {}\n", 1), wantErr: true},
		{name: "upper-case name", src: strings.Replace(good, "name: usage-export", "name: Usage-Export", 1), wantErr: true},
		{name: "no services", src: good[:strings.Index(good, "services:")], wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.wantErr && tt.src == good {
				t.Fatal("mutation did not change the document")
			}
			doc, err := yamlToJSON([]byte(tt.src))
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			err = schema.Validate(doc)
			if (err != nil) != tt.wantErr {
				t.Errorf("Validate error = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

// azureProject is the part of azure.yaml cross-checked against the Terraform files.
type azureProject struct {
	Infra struct {
		Provider string `yaml:"provider"`
		Path     string `yaml:"path"`
	} `yaml:"infra"`
	Services map[string]struct {
		Project string `yaml:"project"`
		Dist    string `yaml:"dist"`
	} `yaml:"services"`
}

func TestAzureYAMLMatchesInfra(t *testing.T) {
	var p azureProject
	if err := yaml.Unmarshal(readAzureYAML(t), &p); err != nil {
		t.Fatal(err)
	}
	if got, want := filepath.Clean(filepath.Join("..", p.Infra.Path)), filepath.Clean("../infra"); got != want {
		t.Errorf("infra.path resolves to %s, want %s", got, want)
	}

	m := loadModule(t)
	v, err := literal(m.variables[azdServiceVar], "default")
	if err != nil {
		t.Fatalf("variable %s: %v", azdServiceVar, err)
	}
	for name, svc := range p.Services {
		if name != v.AsString() {
			t.Errorf("service %q does not match the azd-service-name tag default %q", name, v.AsString())
		}
		if !strings.HasPrefix(filepath.ToSlash(filepath.Join(svc.Project, svc.Dist)), azdPackageRoot) {
			t.Errorf("service %q dist %q is not under %s", name, svc.Dist, azdPackageRoot)
		}
	}

	// azd passes main.tfvars.json to terraform: every key must be a declared variable,
	// and every variable without a default must be given.
	b, err := os.ReadFile(azdTfvarsPath)
	if err != nil {
		t.Fatal(err)
	}
	var vars map[string]any
	if err := json.Unmarshal(b, &vars); err != nil {
		t.Fatalf("parse %s: %v", azdTfvarsPath, err)
	}
	var unknown, missing []string
	for k := range vars {
		if _, ok := m.variables[k]; !ok {
			unknown = append(unknown, k)
		}
	}
	for name, blk := range m.variables {
		if _, hasDefault := blk.Body.Attributes["default"]; !hasDefault {
			if _, given := vars[name]; !given {
				missing = append(missing, name)
			}
		}
	}
	sort.Strings(unknown)
	sort.Strings(missing)
	if len(unknown) > 0 {
		t.Errorf("%s sets undeclared variables %v", azdTfvarsPath, unknown)
	}
	if len(missing) > 0 {
		t.Errorf("%s does not set required variables %v", azdTfvarsPath, missing)
	}
}
