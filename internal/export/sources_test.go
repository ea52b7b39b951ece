package export

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/usage-export/usage-export/internal/costdetails"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/scope"
)

func TestCostDetailsRequest(t *testing.T) {
	sub := scope.MustParse("/subscriptions/00000000-0000-0000-0000-000000000001")
	dept := scope.MustParse("/providers/Microsoft.Billing/departments/42")
	profile := scope.MustParse("/providers/Microsoft.Billing/billingAccounts/12345:6789_2019-05-31/billingProfiles/P1")
	customer := scope.MustParse("/providers/Microsoft.Billing/billingAccounts/12345:6789_2019-05-31/customers/C1")
	today := time.Date(2024, 6, 10, 0, 0, 0, 0, time.UTC)
	chunk := func(sc scope.Scope, per, metric string, partDays, index int) Chunk {
		p, err := period.Parse(per)
		if err != nil {
			t.Fatal(err)
		}
		return Chunks(Partition{Scope: sc, Period: p, Metric: metric}, partDays, today)[index]
	}
	day := func(s string) time.Time {
		d, err := time.Parse(time.DateOnly, s)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	may := period.Period{Year: 2024, Month: time.May}
	tests := []struct {
		name    string
		invoice string
		chunk   Chunk
		want    costdetails.Request
		wantErr string
	}{
		{"EA whole period asks for the billing period", "", chunk(dept, "202405", "actualcost", -1, 0),
			costdetails.Request{Scope: dept, Metric: costdetails.MetricActualCost, BillingPeriod: may}, ""},
		{"subscription whole period asks for its days", "", chunk(sub, "202405", "amortizedcost", -1, 0),
			costdetails.Request{Scope: sub, Metric: costdetails.MetricAmortizedCost, Start: day("2024-05-01"), End: day("2024-05-31")}, ""},
		{"open month asks for all its days (the client cuts at today)", "", chunk(profile, "202406", "actualcost", -1, 0),
			costdetails.Request{Scope: profile, Metric: costdetails.MetricActualCost, Start: day("2024-06-01"), End: day("2024-06-30")}, ""},
		{"EA day chunk asks for its days", "", chunk(dept, "202405", "amortizedcost", 1, 0),
			costdetails.Request{Scope: dept, Metric: costdetails.MetricAmortizedCost, Start: day("2024-05-01"), End: day("2024-05-01")}, ""},
		{"metric in any case", "", chunk(sub, "202405", "ActualCost", 7, 1),
			costdetails.Request{Scope: sub, Metric: costdetails.MetricActualCost, Start: day("2024-05-08"), End: day("2024-05-14")}, ""},
		{"billing profile whole period by invoice", "G1", chunk(profile, "202405", "actualcost", -1, 0),
			costdetails.Request{Scope: profile, Metric: costdetails.MetricActualCost, InvoiceID: "G1"}, ""},
		{"customer whole period by invoice", "G1", chunk(customer, "202405", "amortizedcost", -1, 0),
			costdetails.Request{Scope: customer, Metric: costdetails.MetricAmortizedCost, InvoiceID: "G1"}, ""},
		{"a day chunk by invoice still asks for its days", "G1", chunk(profile, "202405", "actualcost", 1, 3),
			costdetails.Request{Scope: profile, Metric: costdetails.MetricActualCost, Start: day("2024-05-04"), End: day("2024-05-04")}, ""},
		{"an EA scope takes no invoice", "G1", chunk(dept, "202405", "actualcost", -1, 0),
			costdetails.Request{Scope: dept, Metric: costdetails.MetricActualCost, BillingPeriod: may}, ""},
		{"usage metric", "", chunk(sub, "202405", "usage", -1, 0), costdetails.Request{}, "Cost Details has no usage metric"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &CostDetails{}
			if tt.invoice != "" {
				src = src.ForInvoice(tt.invoice).(*CostDetails)
			}
			got, err := src.request(tt.chunk)
			if tt.wantErr != "" {
				if !errors.Is(err, costdetails.ErrInvalidRequest) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("err = %v, want ErrInvalidRequest containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("request\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
	if s := (&CostDetails{}); s.Name() != "costDetails" {
		t.Errorf("Name = %q", s.Name())
	}
}
