package consumption_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/usage-export/usage-export/internal/consumption"
	"github.com/usage-export/usage-export/internal/metric"
	"github.com/usage-export/usage-export/internal/mgmt"
	"github.com/usage-export/usage-export/internal/paging"
	"github.com/usage-export/usage-export/internal/scope"
)

// printer prints what List hands it, nextLinks redacted and without the endpoint.
type printer struct{ endpoint string }

func (printer) Record(_ context.Context, raw []byte) error {
	fmt.Printf("record %s\n", raw)
	return nil
}

func (p printer) PageDone(_ context.Context, pg paging.Page) error {
	next := "(end)"
	if pg.NextLink != "" {
		next = strings.TrimPrefix(mgmt.RedactURL(pg.NextLink), p.endpoint)
	}
	fmt.Printf("page %d: %d records, next %s\n", pg.Index, pg.Records, next)
	return nil
}

func ExampleClient_List() {
	// A stand-in for the API on loopback, serving two pages.
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.RawQuery, "skiptoken") {
			_, _ = io.WriteString(w, `{"value":[{"id":"b","properties":{"cost":0.000001980949998}}]}`)
			return
		}
		fmt.Fprintf(w, `{"value":[{"id":"a"}],"nextLink":"%s%s?api-version=2024-08-01&$skiptoken=abc"}`, srv.URL, r.URL.Path)
	}))
	defer srv.Close()

	c, err := consumption.NewClient(mgmt.StaticToken("token"), &consumption.Options{Endpoint: srv.URL})
	if err != nil {
		fmt.Println(err)
		return
	}
	q := consumption.Query{
		Scope:         scope.MustParse("/providers/Microsoft.Billing/billingAccounts/1234"),
		BillingPeriod: "202401",
		Metric:        metric.ActualCost,
		Top:           consumption.MaxTop,
	}
	if err := c.List(context.Background(), q, printer{c.Endpoint()}); err != nil {
		fmt.Println(err)
	}
	// Output:
	// record {"id":"a"}
	// page 0: 1 records, next /providers/Microsoft.Billing/billingAccounts/1234/providers/Microsoft.Billing/billingPeriods/202401/providers/Microsoft.Consumption/usageDetails?api-version=2024-08-01&$skiptoken=REDACTED
	// record {"id":"b","properties":{"cost":0.000001980949998}}
	// page 1: 1 records, next (end)
}
