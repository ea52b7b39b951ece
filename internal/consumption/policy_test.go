package consumption

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{
			"https://management.azure.com/subscriptions/x/providers/Microsoft.Consumption/usageDetails?api-version=2024-08-01&sessiontoken=21:32512334&$skiptoken=327C%27ab&skiptokenver=v1&id=98fce233",
			"https://management.azure.com/subscriptions/x/providers/Microsoft.Consumption/usageDetails?api-version=2024-08-01&sessiontoken=REDACTED&$skiptoken=REDACTED&skiptokenver=v1&id=98fce233",
		},
		{"https://h/x?%24skiptoken=abc&SKIPTOKEN=d", "https://h/x?%24skiptoken=REDACTED&SKIPTOKEN=REDACTED"},
		{"https://acct.blob.core.windows.net/c/b?sv=2020-05-31&sr=b&sig=abcd%2B", "https://acct.blob.core.windows.net/c/b?sv=2020-05-31&sr=b&sig=REDACTED"},
		{"https://user:pass@h/x", "https://REDACTED@h/x"},
		{"https://h/x#frag", "https://h/x"},
		{"https://h/x", "https://h/x"},
		{"http://h/%zz?$skiptoken=abc", "http://h/%zz?REDACTED"},
	}
	for _, tt := range tests {
		if got := RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%q)\n got %q\nwant %q", tt.in, got, tt.want)
		}
	}
}

func TestStaticToken(t *testing.T) {
	tok, err := StaticToken("  eyJ.abc.def\n").GetToken(context.Background(), policy.TokenRequestOptions{})
	if err != nil || tok.Token != "eyJ.abc.def" || !tok.ExpiresOn.After(time.Now()) {
		t.Errorf("GetToken = %+v, %v; want the trimmed token with a future expiry", tok, err)
	}
	if _, err := StaticToken(" \n").GetToken(context.Background(), policy.TokenRequestOptions{}); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty token: err = %v, want an error saying it is empty", err)
	}
}

func TestTokenFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	cred := TokenFile(path)
	get := func() (string, error) {
		tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"x/.default"}})
		return tok.Token, err
	}
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	if _, err := get(); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("missing file: err = %v, want an error naming %s", err, path)
	}
	write(" \n\t")
	if _, err := get(); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("blank file: err = %v, want an error saying it is empty", err)
	}
	write("first-token\n")
	if got, err := get(); err != nil || got != "first-token" {
		t.Errorf("GetToken = %q, %v; want first-token", got, err)
	}
	// Rotation by rewriting in place and by replacing the file, as secret mounts do.
	write("second-token-rotated\n")
	if got, err := get(); err != nil || got != "second-token-rotated" {
		t.Errorf("after rewrite: GetToken = %q, %v; want second-token-rotated", got, err)
	}
	tmp := filepath.Join(dir, "token.new")
	if err := os.WriteFile(tmp, []byte("third"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	if got, err := get(); err != nil || got != "third" {
		t.Errorf("after replace: GetToken = %q, %v; want third", got, err)
	}
	write("two\nlines")
	if _, err := get(); err == nil || !strings.Contains(err.Error(), "more than one line") {
		t.Errorf("two lines: err = %v, want a one-line error", err)
	}
}

func TestTokenFileOnTheWire(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte("file-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := newScript(t, reply(`{"value":[]}`))
	c, err := NewClient(TokenFile(path), testOptions(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.List(context.Background(), Query{Scope: subScope}, &collector{}); err != nil {
		t.Fatalf("List: %v", err)
	}
	if got := srv.request(0).Header.Get("Authorization"); got != "Bearer file-token" {
		t.Errorf("Authorization = %q, want %q", got, "Bearer file-token")
	}
}
