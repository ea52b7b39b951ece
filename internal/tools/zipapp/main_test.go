package main

import (
	"archive/zip"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// stageDir lays out a staged app: host.json, the handler binary and two function folders.
func stageDir(t *testing.T, extra map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"host.json":                      `{"version":"2.0"}`,
		"handler":                        "\x7fELF binary",
		"UsageExportTimer/function.json": `{"bindings":[]}`,
		"UsageExportHttp/function.json":  `{"bindings":[]}`,
	}
	for k, v := range extra {
		files[k] = v
	}
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		// Written without the exec bit: the zip's mode must not depend on the file system.
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestModesSurvive(t *testing.T) {
	dir := stageDir(t, nil)
	out := filepath.Join(t.TempDir(), "app.zip")
	if err := run(dir, out, []string{"handler"}); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.OpenReader(out)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	want := map[string]os.FileMode{
		"UsageExportHttp/function.json":  0o644,
		"UsageExportTimer/function.json": 0o644,
		"handler":                        0o755,
		"host.json":                      0o644,
	}
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
		if got := f.Mode(); got != want[f.Name] {
			t.Errorf("%s: mode %v, want %v", f.Name, got, want[f.Name])
		}
		if f.CreatorVersion>>8 != 3 {
			t.Errorf("%s: creator OS %d, want 3 (Unix), or unzip ignores the mode", f.Name, f.CreatorVersion>>8)
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		orig, _ := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f.Name)))
		if !bytes.Equal(b, orig) {
			t.Errorf("%s: content differs", f.Name)
		}
	}
	if got := strings.Join(names, ","); got != "UsageExportHttp/function.json,UsageExportTimer/function.json,handler,host.json" {
		t.Errorf("entries %s, want the flat app layout, sorted", got)
	}
}

func TestDeterministic(t *testing.T) {
	dir := stageDir(t, nil)
	var a, b bytes.Buffer
	if err := write(&a, dir, []string{"handler"}); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(dir, "host.json"), zipEpoch.AddDate(30, 0, 0), zipEpoch.AddDate(30, 0, 0)); err != nil {
		t.Fatal(err)
	}
	if err := write(&b, dir, []string{"handler"}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two zips of the same folder differ")
	}
}

func TestRefusals(t *testing.T) {
	tests := []struct {
		name  string
		extra map[string]string
		execs []string
		want  string
	}{
		{"local settings", map[string]string{"local.settings.json": "{}"}, []string{"handler"}, "must not be packaged"},
		{"missing executable", nil, []string{"handler.exe"}, "handler.exe is not in"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := stageDir(t, tt.extra)
			out := filepath.Join(t.TempDir(), "app.zip")
			err := run(dir, out, tt.execs)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("a zip was left behind after a failure")
			}
		})
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "handler"), []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := write(io.Discard, dir, []string{"handler"}); err == nil || !strings.Contains(err.Error(), "host.json") {
		t.Errorf("folder without host.json: %v, want a refusal", err)
	}
	if err := os.Symlink("outside-the-app", filepath.Join(dir, "host.json")); err != nil {
		t.Fatal(err)
	}
	if err := write(io.Discard, dir, []string{"handler"}); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("symlink: %v, want a refusal", err)
	}
}
