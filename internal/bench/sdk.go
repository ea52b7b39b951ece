package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/consumption/armconsumption"

	"github.com/usage-export/usage-export/internal/export"
)

// SDKOptions configure SDKBaseline.
type SDKOptions struct {
	Endpoint   string // management endpoint (the sandbox), http on loopback
	Token      string // bearer token
	Scope      string // billing scope path, e.g. /providers/Microsoft.Billing/billingAccounts/8608480
	From, To   time.Time
	Expand     string // $expand, e.g. additionalInfo
	APIVersion string // api-version to request instead of the SDK's own (so both read the same bytes); "" keeps the SDK's
	GzipLevel  int    // export.NewCompressor level; 0 = the exporter's default
}

// SDKResult counts what SDKBaseline wrote.
type SDKResult struct {
	Records int64 `json:"records"`
	Pages   int64 `json:"pages"`
	Bytes   int64 `json:"bytes"` // JSON-lines bytes before gzip
}

// SDKBaseline is the comparison path built from the Azure SDK for Go as its documentation
// shows it: armconsumption.UsageDetailsClient.NewListPager, each page decoded into the typed,
// polymorphic models, each record re-encoded with json.Marshal as one line, the lines gzipped to
// w. It is what an exporter written on the SDK costs, measured against the same sandbox data.
func SDKBaseline(ctx context.Context, o SDKOptions, w io.Writer) (SDKResult, error) {
	var res SDKResult
	copts := policy.ClientOptions{
		Cloud: cloud.Configuration{
			ActiveDirectoryAuthorityHost: "https://login.microsoftonline.com/",
			Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
				cloud.ResourceManager: {Endpoint: o.Endpoint, Audience: "https://management.azure.com"},
			},
		},
		Transport:                       http.DefaultClient,
		InsecureAllowCredentialWithHTTP: true, // loopback sandbox
	}
	if o.APIVersion != "" {
		copts.PerCallPolicies = []policy.Policy{apiVersionPolicy(o.APIVersion)}
	}
	client, err := armconsumption.NewUsageDetailsClient(staticToken(o.Token), &arm.ClientOptions{ClientOptions: copts})
	if err != nil {
		return res, fmt.Errorf("sdk baseline: %w", err)
	}
	filter := fmt.Sprintf("properties/usageStart ge '%s' and properties/usageEnd le '%s'",
		o.From.Format(time.DateOnly), o.To.Format(time.DateOnly))
	lo := &armconsumption.UsageDetailsClientListOptions{Filter: &filter}
	if o.Expand != "" {
		lo.Expand = &o.Expand
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	gz, err := export.NewCompressor(bw, o.GzipLevel) // as the exporter compresses its parts
	if err != nil {
		return res, fmt.Errorf("sdk baseline: %w", err)
	}
	pager := client.NewListPager(o.Scope, lo)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return res, fmt.Errorf("sdk baseline: page %d: %w", res.Pages, err)
		}
		res.Pages++
		for _, rec := range page.Value {
			line, err := json.Marshal(rec)
			if err != nil {
				return res, fmt.Errorf("sdk baseline: record %d: %w", res.Records, err)
			}
			line = append(line, '\n')
			if _, err := gz.Write(line); err != nil {
				return res, fmt.Errorf("sdk baseline: %w", err)
			}
			res.Records++
			res.Bytes += int64(len(line))
		}
	}
	if err := gz.Close(); err != nil {
		return res, fmt.Errorf("sdk baseline: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return res, fmt.Errorf("sdk baseline: %w", err)
	}
	return res, nil
}

// staticToken is a bearer token credential.
type staticToken string

func (t staticToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	if t == "" {
		return azcore.AccessToken{}, errors.New("sdk baseline: empty token")
	}
	return azcore.AccessToken{Token: string(t), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// apiVersionPolicy replaces the api-version the SDK pins with v, so the baseline reads exactly
// the bytes the exporter reads.
type apiVersionPolicy string

func (v apiVersionPolicy) Do(req *policy.Request) (*http.Response, error) {
	u := req.Raw().URL
	q := u.Query()
	if q.Has("api-version") {
		q.Set("api-version", string(v))
		u.RawQuery = q.Encode()
	}
	return req.Next()
}
