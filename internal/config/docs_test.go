package config

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the README's settings table and local.settings.json.example from Settings")

// The README's settings table sits between these lines.
const (
	tableStart = "<!-- settings table: generated from internal/config's Settings (go test ./internal/config -run TestDocsFollowTable -update) -->"
	tableEnd   = "<!-- end of settings table -->"
)

// readmeTable renders Settings as the README's Markdown table.
func readmeTable() string {
	var b strings.Builder
	b.WriteString("| setting | default | meaning |\n|---|---|---|\n")
	for _, s := range Settings {
		def := s.DefaultDoc
		switch {
		case def != "":
		case s.Default != "":
			def = "`" + s.Default + "`"
		default:
			def = "—"
		}
		doc := s.Doc
		if doc == "" {
			doc = s.Help
		}
		b.WriteString("| `" + s.Env + "` | " + def + " | " + doc + " |\n")
	}
	return b.String()
}

// localSettings renders local.settings.json.example: the Functions host's own values, then every
// setting with its example (or default) value.
func localSettings() []byte {
	var b bytes.Buffer
	b.WriteString("{\n  \"IsEncrypted\": false,\n  \"Values\": {\n")
	b.WriteString("    \"FUNCTIONS_WORKER_RUNTIME\": \"Custom\",\n    \"AzureWebJobsStorage\": \"UseDevelopmentStorage=true\"")
	for _, s := range Settings {
		v := s.Example
		if v == "" {
			v = s.Default
		}
		k, _ := json.Marshal(s.Env)
		val, _ := json.Marshal(v)
		b.WriteString(",\n    " + string(k) + ": " + string(val))
	}
	b.WriteString("\n  },\n  \"Host\": {\n    \"LocalHttpPort\": 7071\n  },\n  \"ConnectionStrings\": {}\n}\n")
	return b.Bytes()
}

// TestDocsFollowTable checks that the README's settings table and local.settings.json.example
// say what Settings says; -update rewrites them.
func TestDocsFollowTable(t *testing.T) {
	const readme, example = "../../README.md", "../../local.settings.json.example"
	raw, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	i, j := strings.Index(text, tableStart), strings.Index(text, tableEnd)
	if i < 0 || j < i {
		t.Fatalf("%s: no settings table between %q and %q", readme, tableStart, tableEnd)
	}
	want := text[:i+len(tableStart)] + "\n" + readmeTable() + text[j:]
	gotExample, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(localSettings()) {
		t.Fatalf("local settings are not JSON:\n%s", localSettings())
	}
	if *update {
		if err := os.WriteFile(readme, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(example, localSettings(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if text != want {
		t.Errorf("%s: the settings table differs from Settings; run go test ./internal/config -run TestDocsFollowTable -update", readme)
	}
	if !bytes.Equal(gotExample, localSettings()) {
		t.Errorf("%s differs from Settings; run go test ./internal/config -run TestDocsFollowTable -update", example)
	}
}
