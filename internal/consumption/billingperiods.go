package consumption

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"github.com/usage-export/usage-export/internal/mgmt"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/scope"
)

// BillingPeriodsAPIVersion is the api-version of the Billing Periods API.
const BillingPeriodsAPIVersion = "2018-03-01-preview"

// maxBillingPeriodsBody bounds one page of the Billing Periods API (a few hundred bytes a period).
const maxBillingPeriodsBody = 4 << 20

// BillingPeriods lists a subscription's billing periods as the Billing Periods API defines them
// (GET /subscriptions/{id}/providers/Microsoft.Billing/billingPeriods): calendar months for EA
// and MCA subscriptions, sign-up-anchored periods (names like 201702-1) for pay-as-you-go ones.
// Each period has its own days (period.Anchored). The calls go through the same pipeline (rate
// budget, retries) as the usage listings.
func (c *Client) BillingPeriods(ctx context.Context, sub scope.Scope) ([]period.Period, error) {
	if sub.Kind != scope.Subscription {
		return nil, fmt.Errorf("%w: billing periods of a %s scope: only subscriptions have them", ErrInvalidQuery, sub.Kind)
	}
	link := c.endpoint + sub.Path() + "/providers/Microsoft.Billing/billingPeriods?api-version=" + BillingPeriodsAPIVersion
	var out []period.Period
	seen := map[string]bool{}
	for link != "" {
		if seen[link] {
			return nil, fmt.Errorf("listing billing periods: %w", mgmt.Permanent(ErrNextLinkLoop))
		}
		seen[link] = true
		next, ps, err := c.billingPeriodsPage(ctx, link)
		if err != nil {
			return nil, fmt.Errorf("listing billing periods of %s: %w", sub, err)
		}
		out = append(out, ps...)
		if next != "" {
			if err := c.checkLink(next); err != nil {
				return nil, fmt.Errorf("listing billing periods of %s: nextLink: %w", sub, err)
			}
		}
		link = next
	}
	return out, nil
}

func (c *Client) billingPeriodsPage(ctx context.Context, link string) (string, []period.Period, error) {
	req, err := runtime.NewRequest(ctx, http.MethodGet, link)
	if err != nil {
		return "", nil, mgmt.RedactURLError(err)
	}
	req.Raw().Header.Set("Accept", "application/json")
	resp, err := c.pipeline.Do(req)
	if err != nil {
		return "", nil, mgmt.RedactURLError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", nil, mgmt.NewAPIError(resp)
	}
	var body struct {
		Value []struct {
			Name       string `json:"name"`
			Properties struct {
				Start string `json:"billingPeriodStartDate"`
				End   string `json:"billingPeriodEndDate"`
			} `json:"properties"`
		} `json:"value"`
		NextLink string `json:"nextLink"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxBillingPeriodsBody)).Decode(&body); err != nil {
		return "", nil, fmt.Errorf("decoding billing periods: %w", err)
	}
	var out []period.Period
	for _, v := range body.Value {
		first, err1 := time.Parse(time.DateOnly, firstN(v.Properties.Start, 10))
		last, err2 := time.Parse(time.DateOnly, firstN(v.Properties.End, 10))
		if err1 != nil || err2 != nil {
			return "", nil, fmt.Errorf("billing period %q: dates %q..%q: want YYYY-MM-DD", v.Name, v.Properties.Start, v.Properties.End)
		}
		p, err := period.Anchored(v.Name, first, last)
		if err != nil {
			return "", nil, err
		}
		out = append(out, p)
	}
	return body.NextLink, out, nil
}

func firstN(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
