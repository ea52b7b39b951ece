package consumption

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/usage-export/usage-export/internal/scope"
)

func date(s string) time.Time { return must(time.Parse(time.DateOnly, s)) }

// TestQueryOnTheWire asserts the exact request URI the server sees for each date dialect and
// parameter combination.
func TestQueryOnTheWire(t *testing.T) {
	const (
		ea   = "/providers/Microsoft.Billing/billingAccounts/1234"
		mca  = "/providers/Microsoft.Billing/billingAccounts/1234:56789/billingProfiles/2468"
		sub  = "/subscriptions/00000000-0000-0000-0000-000000000000"
		dept = "/providers/Microsoft.Billing/Departments/42"
		ud   = "/providers/Microsoft.Consumption/usageDetails"
	)
	jan := func(q Query) Query { q.From, q.To = date("2024-01-01"), date("2024-01-31"); return q }
	tests := []struct {
		name    string
		version string
		q       Query
		want    string
	}{
		{
			name: "legacy scope: $filter dates, as in the docs",
			q:    jan(Query{Scope: scope.MustParse(ea), Top: 1000}),
			want: ea + ud + "?$expand=properties%2FmeterDetails,properties%2FadditionalInfo&$filter=properties%2FusageStart%20ge%20'2024-01-01'%20and%20properties%2FusageEnd%20le%20'2024-01-31'&$top=1000&api-version=2024-08-01",
		},
		{
			name: "modern scope: startDate/endDate",
			q:    jan(Query{Scope: scope.MustParse(mca), Top: 1000}),
			want: mca + ud + "?$expand=properties%2FmeterDetails,properties%2FadditionalInfo&$top=1000&startDate=2024-01-01&endDate=2024-01-31&api-version=2024-08-01",
		},
		{
			name: "subscription: both dialects, extra filter and-joined",
			q:    jan(Query{Scope: scope.MustParse(sub), Filter: "properties/resourceGroup eq 'rg 1&2'", Metric: "AmortizedCost"}),
			want: sub + ud + "?$expand=properties%2FmeterDetails,properties%2FadditionalInfo&$filter=properties%2FusageStart%20ge%20'2024-01-01'%20and%20properties%2FusageEnd%20le%20'2024-01-31'%20and%20properties%2FresourceGroup%20eq%20'rg%201%262'&metric=amortizedcost&startDate=2024-01-01&endDate=2024-01-31&api-version=2024-08-01",
		},
		{
			name:    "2018-06-30 subscription: $filter only, no metric",
			version: "2018-06-30",
			q:       jan(Query{Scope: scope.MustParse(sub), Metric: "actualcost"}),
			want:    sub + ud + "?$expand=properties%2FmeterDetails,properties%2FadditionalProperties&$filter=properties%2FusageStart%20ge%20'2024-01-01'%20and%20properties%2FusageEnd%20le%20'2024-01-31'&api-version=2018-06-30",
		},
		{
			name:    "billing period from the query, expand, metric",
			version: "2019-10-01",
			q:       Query{Scope: scope.MustParse(dept), BillingPeriod: "201903", Expand: "meterDetails,additionalInfo", Metric: "usage"},
			want:    dept + "/providers/Microsoft.Billing/billingPeriods/201903" + ud + "?$expand=meterDetails,additionalInfo&metric=usage&api-version=2019-10-01",
		},
		{
			name: "billing period from the scope, tag filter",
			q:    Query{Scope: scope.MustParse(sub + "/providers/Microsoft.Billing/billingPeriods/202402"), Filter: "tags eq 'dev:tools'"},
			want: sub + "/providers/Microsoft.Billing/billingPeriods/202402" + ud + "?$expand=properties%2FmeterDetails,properties%2FadditionalInfo&$filter=tags%20eq%20'dev:tools'&api-version=2024-08-01",
		},
		{
			name: "query period wins over the scope's",
			q:    Query{Scope: scope.MustParse(sub + "/providers/Microsoft.Billing/billingPeriods/202402"), BillingPeriod: "202401"},
			want: sub + "/providers/Microsoft.Billing/billingPeriods/202401" + ud + "?$expand=properties%2FmeterDetails,properties%2FadditionalInfo&api-version=2024-08-01",
		},
		{
			name: "no $expand when asked for none",
			q:    Query{Scope: scope.MustParse(sub), Expand: ExpandNone},
			want: sub + ud + "?api-version=2024-08-01",
		},
		{
			name: "dates are UTC dates",
			q: Query{Scope: scope.MustParse(mca),
				From: time.Date(2024, 1, 31, 22, 0, 0, 0, time.FixedZone("", -5*3600)),
				To:   time.Date(2024, 2, 2, 1, 0, 0, 0, time.FixedZone("", 3*3600))},
			want: mca + ud + "?$expand=properties%2FmeterDetails,properties%2FadditionalInfo&startDate=2024-02-01&endDate=2024-02-01&api-version=2024-08-01",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got = append(got, r.RequestURI)
				_, _ = w.Write([]byte(`{"value":[]}`))
			}))
			defer srv.Close()
			c := newTestClient(t, srv.URL, func(o *Options) { o.APIVersion = tt.version })
			if err := c.List(context.Background(), tt.q, &collector{}); err != nil {
				t.Fatalf("List: %v", err)
			}
			if len(got) != 1 || got[0] != tt.want {
				t.Errorf("server saw %q\nwant        %q", got, tt.want)
			}
		})
	}
}

func TestQueryValidation(t *testing.T) {
	sub := scope.MustParse("/subscriptions/00000000-0000-0000-0000-000000000000")
	mca := scope.MustParse("/providers/Microsoft.Billing/billingAccounts/1234:56789")
	ea := scope.MustParse("/providers/Microsoft.Billing/billingAccounts/1234")
	tests := []struct {
		name    string
		version string
		q       Query
		want    string // in the error message
	}{
		{"no scope", "", Query{}, "no scope"},
		{"usage metric on 2018-06-30", "2018-06-30", Query{Scope: sub, Metric: "usage"}, "has no metric parameter"},
		{"amortized metric on 2018-06-30", "2018-06-30", Query{Scope: ea, Metric: "amortizedcost"}, "has no metric parameter"},
		{"unknown metric", "", Query{Scope: sub, Metric: "cost"}, `metric "cost"`},
		{"top too large", "", Query{Scope: sub, Top: 1001}, "top 1001"},
		{"top negative", "", Query{Scope: sub, Top: -1}, "top -1"},
		{"from only", "", Query{Scope: sub, From: date("2024-01-01")}, "both From and To"},
		{"to only", "", Query{Scope: sub, To: date("2024-01-01")}, "both From and To"},
		{"reversed range", "", Query{Scope: sub, From: date("2024-02-01"), To: date("2024-01-01")}, "ends before it starts"},
		{"filter on an MCA scope", "", Query{Scope: mca, Filter: "tags eq 'a:b'"}, "$filter is ignored by MCA"},
		{"MCA scope on 2018-06-30", "2018-06-30", Query{Scope: mca}, "has no MCA scopes"},
		{"bad period name", "", Query{Scope: sub, BillingPeriod: "2024-01"}, "is not yyyyMM"},
		{"path in period name", "", Query{Scope: sub, BillingPeriod: "202401/../x"}, "is not yyyyMM"},
		{"period on an MCA scope", "", Query{Scope: mca, BillingPeriod: "202401"}, "no billing-period sub-scope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newScript(t) // any request fails the test
			c := newTestClient(t, srv.URL, func(o *Options) { o.APIVersion = tt.version })
			err := c.List(context.Background(), tt.q, &collector{})
			if !errors.Is(err, ErrInvalidQuery) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrInvalidQuery mentioning %q", err, tt.want)
			}
			if !IsPermanent(err) {
				t.Errorf("IsPermanent = false, want true")
			}
		})
	}
}

func TestEscapeQueryValue(t *testing.T) {
	tests := []struct{ in, want string }{
		{"properties/usageStart ge '2020-02-01'", "properties%2FusageStart%20ge%20'2020-02-01'"},
		{"a+b&c=d;e#f?g%h", "a%2Bb%26c%3Dd%3Be%23f%3Fg%25h"},
		{"meterDetails,additionalInfo", "meterDetails,additionalInfo"},
		{"tags eq 'dev:tools'", "tags%20eq%20'dev:tools'"},
		{"ü", "%C3%BC"},
	}
	for _, tt := range tests {
		if got := escapeQueryValue(tt.in); got != tt.want {
			t.Errorf("escapeQueryValue(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
