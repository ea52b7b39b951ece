package redact_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/usage-export/usage-export/internal/redact"
)

// secrets are the values no output may carry.
var secrets = []string{"abc123", "s3cr3t", "sess10n", "k3yk3y", "eyJhbGciOi.payload.sig"}

func leaked(s string) []string {
	var out []string
	for _, x := range secrets {
		if strings.Contains(s, x) {
			out = append(out, x)
		}
	}
	return out
}

// TestString: secrets in URLs, connection strings and Authorization values go; the rest of the
// text, quotes and line breaks included, stays.
func TestString(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{
			`page 1: GET https://management.azure.com/x/usageDetails?api-version=2024-08-01&$skiptoken=abc123&id=7: Get "https://management.azure.com/x/usageDetails?$skiptoken=abc123&api-version=2024-08-01": dial tcp 127.0.0.1:1: connect: connection refused`,
			`page 1: GET https://management.azure.com/x/usageDetails?api-version=2024-08-01&$skiptoken=REDACTED&id=7: Get "https://management.azure.com/x/usageDetails?$skiptoken=REDACTED&api-version=2024-08-01": dial tcp 127.0.0.1:1: connect: connection refused`,
		},
		{"export failed for some partitions:\n/subscriptions/a 202401 actualcost: boom\n/subscriptions/b 202401 actualcost: bang",
			"export failed for some partitions:\n/subscriptions/a 202401 actualcost: boom\n/subscriptions/b 202401 actualcost: bang"},
		{"blob https://acct.blob.core.windows.net/c/b?sv=2024&sig=s3cr3t.", "blob https://acct.blob.core.windows.net/c/b?sv=2024&sig=***"},
		{"no query: http://127.0.0.1:1/x", "no query: http://127.0.0.1:1/x"},
		{"next https://h/x?sessiontoken=sess10n&a=1", "next https://h/x?sessiontoken=REDACTED&a=1"},
		{"DefaultEndpointsProtocol=https;AccountName=a;AccountKey=k3yk3y==;EndpointSuffix=core.windows.net",
			"DefaultEndpointsProtocol=https;AccountName=a;AccountKey=***;EndpointSuffix=core.windows.net"},
		{"BlobEndpoint=https://a/;SharedAccessSignature=sv=1&sig=s3cr3t", "BlobEndpoint=https://a/;SharedAccessSignature=***"},
		{"Authorization: Bearer eyJhbGciOi.payload.sig", "Authorization: Bearer ***"},
		{"proxy https://user:s3cr3t@h/x", "proxy https://REDACTED@h/x"},
		{"plain text, nothing to hide", "plain text, nothing to hide"},
	} {
		got := redact.String(tc.in)
		if got != tc.want {
			t.Errorf("String(%q)\n = %q\nwant %q", tc.in, got, tc.want)
		}
		if l := leaked(got); len(l) > 0 {
			t.Errorf("String(%q) leaves %v", tc.in, l)
		}
	}
}

// TestJSON: every string of a JSON text is redacted, also a string holding JSON text (the HTTP
// body in the host's reply, where encoding/json writes & as \u0026); the rest is kept byte for
// byte.
func TestJSON(t *testing.T) {
	inner, _ := json.Marshal(map[string]any{"error": map[string]string{"code": "x", "message": "GET https://h/u?a=1&$skiptoken=abc123: boom"}})
	outer, _ := json.Marshal(map[string]any{"Outputs": map[string]any{"res": map[string]any{"statusCode": 500, "body": string(inner)}},
		"Logs": []string{"failed: https://a.blob.core.windows.net/c?sig=s3cr3t"}, "ReturnValue": nil})
	if !bytes.Contains(outer, []byte(`\u0026`)) {
		t.Fatalf("the test wants encoding/json's escaped &: %s", outer)
	}
	got := redact.JSON(outer)
	if l := leaked(string(got)); len(l) > 0 {
		t.Errorf("JSON leaves %v in %s", l, got)
	}
	var v struct {
		Outputs struct {
			Res struct {
				StatusCode int    `json:"statusCode"`
				Body       string `json:"body"`
			} `json:"res"`
		}
		Logs []string
	}
	if err := json.Unmarshal(got, &v); err != nil || v.Outputs.Res.StatusCode != 500 || !json.Valid([]byte(v.Outputs.Res.Body)) {
		t.Fatalf("redacted reply is no longer the reply: %v %s", err, got)
	}
	if !strings.Contains(v.Outputs.Res.Body, "$skiptoken=REDACTED") || !strings.Contains(v.Logs[0], "sig=***") {
		t.Errorf("redacted reply = %s", got)
	}

	// Indented JSON without secrets comes back as it was, and with one only the string changes.
	clean := []byte("{\n  \"a\": \"https://h/x\",\n  \"n\": 1.50\n}\n")
	if got := redact.JSON(clean); !bytes.Equal(got, clean) {
		t.Errorf("JSON(clean) = %q", got)
	}
	dirty := []byte("{\n  \"a\": \"https://h/x?sig=s3cr3t\",\n  \"n\": 1.50\n}\n")
	if got, want := redact.JSON(dirty), "{\n  \"a\": \"https://h/x?sig=***\",\n  \"n\": 1.50\n}\n"; string(got) != want {
		t.Errorf("JSON(dirty) = %q, want %q", got, want)
	}
	// Not JSON: redacted as text.
	if got := string(redact.JSON([]byte(`oops "https://h/x?sig=s3cr3t`))); len(leaked(got)) > 0 {
		t.Errorf("JSON(not JSON) = %q", got)
	}
}

// TestWriter: a logger writing through Writer carries no secret in any kind of field, and its
// lines stay JSON.
func TestWriter(t *testing.T) {
	var buf bytes.Buffer
	log := zerolog.New(redact.Writer(&buf))
	err := errors.New(`GET "https://h/usageDetails?$skiptoken=abc123&api-version=1": 500`)
	log.Error().Err(err).Msg("listing failed")
	log.Info().Str("url", "https://a.blob.core.windows.net/c/b?sv=1&sig=s3cr3t").Msg("")
	log.Info().Strs("links", []string{"https://h/x?sessiontoken=sess10n"}).Msg("links")
	log.Info().Interface("settings", map[string]string{"conn": "AccountName=a;AccountKey=k3yk3y==;"}).Msg("settings")
	log.Warn().Msg("header Authorization: Bearer eyJhbGciOi.payload.sig")
	log.Info().Str("plain", "nothing & <nothing>").Msg("kept")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d lines, want 6:\n%s", len(lines), buf.String())
	}
	for _, l := range lines {
		if !json.Valid([]byte(l)) {
			t.Errorf("not JSON: %s", l)
		}
		if lk := leaked(l); len(lk) > 0 {
			t.Errorf("%v in the log line %s", lk, l)
		}
	}
	if !strings.Contains(lines[5], `"plain":"nothing & <nothing>"`) {
		t.Errorf("a line without secrets changed: %s", lines[5])
	}
	// The console writer gets the redacted event.
	buf.Reset()
	console := zerolog.New(redact.Writer(zerolog.ConsoleWriter{Out: &buf, NoColor: true}))
	console.Error().Err(err).Msg("x")
	if lk := leaked(buf.String()); len(lk) > 0 || !strings.Contains(buf.String(), "REDACTED") {
		t.Errorf("console line %q (leaks %v)", buf.String(), lk)
	}
}
