package record

import (
	"encoding/json"
	"os"
	"testing"
	"time"
)

// SpecRecords returns the records of the 200 response of a spec example file in testdata
// (exported for the package's external tests).
func SpecRecords(t testing.TB, file string) []json.RawMessage {
	t.Helper()
	b, err := os.ReadFile("testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	var ex struct {
		Responses map[string]struct {
			Body struct {
				Value []json.RawMessage `json:"value"`
			} `json:"body"`
		} `json:"responses"`
	}
	if err := json.Unmarshal(b, &ex); err != nil {
		t.Fatal(err)
	}
	return ex.Responses["200"].Body.Value
}

func TestExtractFixtures(t *testing.T) {
	tests := []struct {
		file                              string
		kind, date, cost, field, cur, usd string
		sub                               string
	}{
		{"legacy-2024-08-01.json", "legacy", "2019-04-09T00:00:00.0000000Z", "0.000001980949998", FieldCost, "CAD", "", "00000000-0000-0000-0000-000000000000"},
		{"modern-2024-08-01.json", "modern", "2019-10-30T00:00:00.0000000Z", "1.84763819095477", FieldCostInBillingCurrency, "USD", "1.84763819095477", "00000000-0000-0000-0000-000000000000"},
		{"2018-06-30.json", "", "2017-02-13T00:00:00Z", "0.67", FieldPretaxCost, "USD", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			var f Fields
			if err := f.Extract(SpecRecords(t, tt.file)[0]); err != nil {
				t.Fatal(err)
			}
			got := []string{string(f.Kind), string(f.Date), string(f.Cost), f.CostField, string(f.Currency), string(f.CostUSD), string(f.SubscriptionID)}
			want := []string{tt.kind, tt.date, tt.cost, tt.field, tt.cur, tt.usd, tt.sub}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("field %d = %q, want %q", i, got[i], want[i])
				}
			}
		})
	}
}

func TestExtractFlatAndHostile(t *testing.T) {
	var f Fields
	if err := f.Extract([]byte(`{"date":"04/09/2019","costInBillingCurrency":12.5,"billingCurrency":"EUR","meterId":null}`)); err != nil {
		t.Fatal(err)
	}
	if string(f.Cost) != "12.5" || string(f.Currency) != "EUR" || string(f.Date) != "04/09/2019" {
		t.Errorf("flat row: cost %q currency %q date %q", f.Cost, f.Currency, f.Date)
	}
	for _, bad := range []string{``, `[]`, `"x"`, `{"properties":`, `{"a":1,}`, `{"properties":{"cost":}}`} {
		if err := f.Extract([]byte(bad)); err == nil {
			t.Errorf("Extract(%q) = nil error", bad)
		}
	}
}

func TestDay(t *testing.T) {
	want := time.Date(2019, 4, 9, 0, 0, 0, 0, time.UTC)
	for _, in := range []string{"2019-04-09T00:00:00.0000000Z", "2019-04-09", "04/09/2019", "2019-04-09T23:59:59Z"} {
		got, err := Day([]byte(in))
		if err != nil || !got.Equal(want) {
			t.Errorf("Day(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "yesterday", "2019/04/09", "13/45/2019"} {
		if _, err := Day([]byte(in)); err == nil {
			t.Errorf("Day(%q) = nil error", in)
		}
	}
}

func BenchmarkExtract(b *testing.B) {
	raw := []byte(`{"id":"/subscriptions/x/providers/Microsoft.Consumption/usageDetails/1","name":"1","type":"Microsoft.Consumption/usageDetails","kind":"legacy","tags":{"env":"prod"},"properties":{"billingAccountId":"8608480","billingPeriodStartDate":"2024-01-01T00:00:00.0000000Z","date":"2024-01-09T00:00:00.0000000Z","quantity":0.000036,"effectivePrice":0.054693034210767,"cost":0.000001980949998,"unitPrice":5.47,"billingCurrency":"USD","subscriptionId":"00000000-0000-0000-0000-000000000000","additionalInfo":"{\"UsageType\": \"ComputeHR\"}","isAzureCreditEligible":false}}`)
	var f Fields
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if err := f.Extract(raw); err != nil {
			b.Fatal(err)
		}
	}
}
