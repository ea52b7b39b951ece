package consumption

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/usage-export/usage-export/internal/mgmt"
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
		if got := mgmt.RedactURL(tt.in); got != tt.want {
			t.Errorf("mgmt.RedactURL(%q)\n got %q\nwant %q", tt.in, got, tt.want)
		}
	}
}

func TestTokenFileOnTheWire(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte("file-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := newScript(t, reply(`{"value":[]}`))
	c, err := NewClient(mgmt.TokenFile(path), testOptions(srv.URL))
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
