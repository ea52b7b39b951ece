package consumption

import (
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/usage-export/usage-export/internal/mgmt"
)

func TestEndpointValidation(t *testing.T) {
	tests := []struct {
		in       string
		want     string // normalised endpoint; "" means an error is expected
		wantErr  string
		wantAuth string // token scope
	}{
		{in: "", want: "https://management.azure.com", wantAuth: "https://management.azure.com/.default"},
		{in: "https://management.azure.com/", want: "https://management.azure.com", wantAuth: "https://management.azure.com/.default"},
		{in: "https://Management.USGovCloudAPI.net", want: "https://management.usgovcloudapi.net", wantAuth: "https://management.usgovcloudapi.net/.default"},
		{in: "https://management.chinacloudapi.cn:443", want: "https://management.chinacloudapi.cn", wantAuth: "https://management.chinacloudapi.cn/.default"},
		{in: "http://127.0.0.1:8080", want: "http://127.0.0.1:8080", wantAuth: "http://127.0.0.1:8080/.default"},
		{in: "http://127.42.0.1:80", want: "http://127.42.0.1"},
		{in: "http://[::1]:9000", want: "http://[::1]:9000"},
		{in: "http://localhost:7071", want: "http://localhost:7071"},
		{in: "https://10.0.0.5:8443", want: "https://10.0.0.5:8443"},
		{in: "http://management.azure.com", wantErr: "only on a loopback address"},
		{in: "http://10.0.0.5:8080", wantErr: "only on a loopback address"},
		{in: "http://localhost.example.com", wantErr: "only on a loopback address"},
		{in: "http://0x7f000001", wantErr: "only on a loopback address"},
		{in: "ftp://management.azure.com", wantErr: "scheme must be https"},
		{in: "management.azure.com", wantErr: "scheme must be https"},
		{in: "https://management.azure.com/subscriptions", wantErr: "must not contain a path"},
		{in: "https://management.azure.com?api-version=1", wantErr: "must not contain a query"},
		{in: "https://management.azure.com#x", wantErr: "must not contain a fragment"},
		{in: "https://user:pw@management.azure.com", wantErr: "must not contain user information"},
		{in: "https://", wantErr: "no host"},
		{in: "https://host:99999", wantErr: "invalid port"},
		{in: "::garbage", wantErr: "not a URL"},
		{in: "https:management.azure.com", wantErr: "no host"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			c, err := NewClient(mgmt.StaticToken("t"), &Options{Endpoint: tt.in})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewClient(%q) err = %v, want it to mention %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewClient(%q): %v", tt.in, err)
			}
			if got := c.Endpoint(); got != tt.want {
				t.Errorf("Endpoint() = %q, want %q", got, tt.want)
			}
			if tt.wantAuth != "" {
				if got := mgmt.TokenScope(c.origin); got != tt.wantAuth {
					t.Errorf("token scope = %q, want %q", got, tt.wantAuth)
				}
			}
		})
	}
}

func TestAPIVersionValidation(t *testing.T) {
	for _, v := range APIVersions {
		c, err := NewClient(mgmt.StaticToken("t"), &Options{APIVersion: v})
		if err != nil || c.APIVersion() != v {
			t.Errorf("NewClient(APIVersion %q) = %v, %v; want it accepted", v, c, err)
		}
	}
	c, err := NewClient(mgmt.StaticToken("t"), nil)
	if err != nil || c.APIVersion() != DefaultAPIVersion {
		t.Errorf("NewClient(nil options): version %v, err %v; want %s", c, err, DefaultAPIVersion)
	}
	for _, v := range []string{"2020-01-01", "2023-03-01", "latest", "2024-08-01-preview"} {
		_, err := NewClient(mgmt.StaticToken("t"), &Options{APIVersion: v})
		if err == nil || !strings.Contains(err.Error(), strings.Join(APIVersions, ", ")) {
			t.Errorf("NewClient(APIVersion %q) err = %v, want an error listing %v", v, err, APIVersions)
		}
	}
}

func TestOptionsValidationReportsEveryProblem(t *testing.T) {
	_, err := NewClient(nil, &Options{
		Endpoint:        "http://example.com",
		APIVersion:      "1999-01-01",
		UserAgent:       strings.Repeat("a", 25),
		BodyIdleTimeout: -time.Second,
		ClientOptions:   policy.ClientOptions{APIVersion: "2024-08-01"},
	})
	if err == nil {
		t.Fatal("NewClient accepted invalid options")
	}
	for _, want := range []string{"credential is nil", "loopback", "1999-01-01", "user agent", "negative", "ClientOptions.APIVersion"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}
