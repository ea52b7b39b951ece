package main

import (
	"strings"
	"testing"
)

// TestRedact: secrets in URLs and connection strings go; the rest of the text, quotes and line
// breaks included, stays.
func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{
			`page 1: GET https://management.azure.com/x/usageDetails?api-version=2024-08-01&$skiptoken=abc123&id=7: Get "https://management.azure.com/x/usageDetails?$skiptoken=abc123&api-version=2024-08-01": dial tcp 127.0.0.1:1: connect: connection refused`,
			`page 1: GET https://management.azure.com/x/usageDetails?api-version=2024-08-01&$skiptoken=REDACTED&id=7: Get "https://management.azure.com/x/usageDetails?$skiptoken=REDACTED&api-version=2024-08-01": dial tcp 127.0.0.1:1: connect: connection refused`,
		},
		{"export failed for some partitions:\n/subscriptions/a 202401 actualcost: boom\n/subscriptions/b 202401 actualcost: bang",
			"export failed for some partitions:\n/subscriptions/a 202401 actualcost: boom\n/subscriptions/b 202401 actualcost: bang"},
		{"blob https://acct.blob.core.windows.net/c/b?sv=2024&sig=s3cr3t.", "blob https://acct.blob.core.windows.net/c/b?sv=2024&sig=***"},
		{"no query: http://127.0.0.1:1/x", "no query: http://127.0.0.1:1/x"},
	} {
		if got := redact(tc.in); got != tc.want {
			t.Errorf("redact(%q)\n = %q\nwant %q", tc.in, got, tc.want)
		}
		if strings.Contains(redact(tc.in), "s3cr3t") || strings.Contains(redact(tc.in), "abc123") {
			t.Errorf("secret left in %q", redact(tc.in))
		}
	}
}
