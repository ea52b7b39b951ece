package mgmt

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

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
