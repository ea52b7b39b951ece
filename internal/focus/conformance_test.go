package focus

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/usage-export/usage-export/internal/metric"
)

// TestColumnTable checks the dataset's columns against the FOCUS column table kept in
// columns.json: every column not prefixed x_ is a FOCUS column, every Mandatory column is
// emitted, and the table itself is well formed (57 columns in FOCUS 1.2).
func TestColumnTable(t *testing.T) {
	spec, err := LoadSpec()
	if err != nil {
		t.Fatal(err)
	}
	if spec.FocusVersion != Version || len(spec.Columns) != 57 {
		t.Errorf("table: FOCUS %s with %d columns, want %s with 57", spec.FocusVersion, len(spec.Columns), Version)
	}
	seen := map[string]bool{}
	for _, c := range spec.Columns {
		if seen[c.Name] {
			t.Errorf("column %s twice", c.Name)
		}
		seen[c.Name] = true
		if !slices.Contains([]string{"Dimension", "Metric"}, c.ColumnType) ||
			!slices.Contains([]string{"String", "Decimal", "DateTime", "JSON"}, c.DataType) ||
			!slices.Contains([]string{"Mandatory", "Conditional", "Recommended"}, c.FeatureLevel) {
			t.Errorf("column %+v: bad type or level", c)
		}
	}
	ck, err := NewChecker(spec)
	if err != nil {
		t.Fatal(err)
	}
	var mandatory []string
	for _, c := range spec.Columns {
		if c.FeatureLevel == "Mandatory" {
			mandatory = append(mandatory, c.Name)
		}
	}
	t.Logf("%d FOCUS columns emitted and checked, %d of them Mandatory (%s); %d x_ columns",
		len(ck.Checked()), len(mandatory), strings.Join(mandatory, " "), len(Columns)-len(ck.Checked()))

	// The check fails when the table and the columns disagree.
	broken := *spec
	broken.Columns = slices.DeleteFunc(slices.Clone(spec.Columns), func(c Column) bool { return c.Name == "ServiceName" })
	broken.Columns = append(broken.Columns, Column{Name: "NewMandatory", FeatureLevel: "Mandatory"})
	_, err = NewChecker(&broken)
	if err == nil || !strings.Contains(err.Error(), "ServiceName is not in FOCUS") || !strings.Contains(err.Error(), "NewMandatory is not emitted") {
		t.Errorf("broken table: %v", err)
	}
}

// Records in the usageDetails shapes (2024-08-01), one per charge kind the dataset maps.
const (
	legacyCovered = `{"id":"x","name":"x","type":"Microsoft.Consumption/usageDetails","kind":"legacy","tags":{"env":"prod"},"properties":{
"billingAccountId":"8608480","billingAccountName":"Contoso","billingPeriodStartDate":"2024-01-01T00:00:00.0000000Z","billingPeriodEndDate":"2024-01-31T00:00:00.0000000Z",
"billingProfileId":"8608480","billingProfileName":"Contoso","subscriptionId":"s1","subscriptionName":"sub one","date":"2024-01-09T00:00:00.0000000Z",
"product":"Virtual Machines Dsv3 Series - D2s v3 - US East","meterId":"m1","meterDetails":{"meterName":"D2s v3","meterCategory":"Virtual Machines","meterSubCategory":"Dsv3 Series","unitOfMeasure":"1 Hour","serviceFamily":"Compute"},
"quantity":24,"effectivePrice":0.05712,"cost":1.37088,"unitPrice":0.0768,"billingCurrency":"USD","resourceLocation":"USEast","consumedService":"Microsoft.Compute",
"resourceId":"/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1","resourceName":"vm1","additionalInfo":"{\"ServiceType\":\"Standard_D2s_v3\",\"VCPUs\":2}",
"invoiceSection":"Eng","costCenter":"cc","resourceGroup":"rg","reservationId":"r1","reservationName":"RI","productOrderId":"o1","productOrderName":"RI order","offerId":"MS-AZR-0017P",
"isAzureCreditEligible":true,"term":"","publisherName":"Microsoft","publisherType":"Azure","planName":"","chargeType":"Usage","frequency":"UsageBased","payGPrice":0.096,
"benefitId":"/providers/Microsoft.Capacity/reservationOrders/o1/reservations/r1","benefitName":"RI","pricingModel":"Reservation"}}`
	modernRefund = `{"id":"y","name":"y","type":"Microsoft.Consumption/usageDetails","kind":"modern","tags":{},"properties":{
"billingAccountId":"1234:56789_2019-05-31","effectivePrice":42.5,"pricingModel":"Reservation","billingAccountName":"Contoso MCA","billingPeriodStartDate":"2024-02-01T00:00:00.0000000Z",
"billingPeriodEndDate":"2024-02-29T00:00:00.0000000Z","billingProfileId":"AB12","billingProfileName":"Profile","subscriptionGuid":"s2","subscriptionName":"sub two","date":"2024-02-02T00:00:00.0000000Z",
"product":"Reserved VM Instance","meterId":"","quantity":-1,"unitOfMeasure":"","instanceName":"","costInUSD":-42.5,"unitPrice":42.5,"billingCurrencyCode":"EUR",
"resourceLocation":"","consumedService":"Microsoft.Capacity","chargeType":"Refund","frequency":"OneTime","costInBillingCurrency":-38.25,"costInPricingCurrency":-42.5,
"exchangeRatePricingToBilling":0.9,"invoiceId":"G100","previousInvoiceId":"G099","pricingCurrencyCode":"USD","payGPrice":0,"term":"12",
"benefitId":"/providers/Microsoft.Capacity/reservationOrders/o2/reservations/","benefitName":"RI2","publisherType":"Microsoft","publisherName":""}}`
	modernUnusedSP = `{"id":"z","name":"z","type":"Microsoft.Consumption/usageDetails","kind":"modern","tags":{},"properties":{
"billingAccountId":"1234:56789_2019-05-31","pricingModel":"SavingsPlan","billingProfileId":"AB12","billingProfileName":"Profile","subscriptionGuid":"","date":"2024-02-03T00:00:00.0000000Z",
"billingPeriodStartDate":"","billingPeriodEndDate":"","quantity":1,"costInUSD":3.5,"costInBillingCurrency":3.15,"billingCurrencyCode":"EUR","exchangeRatePricingToBilling":0.9,
"chargeType":"UnusedSavingsPlan","frequency":"","benefitId":"/providers/Microsoft.BillingBenefits/savingsPlanOrders/sp1/savingsPlans/s","benefitName":"SP","pricingCurrencyCode":"USD"}}`
)

func TestConvert(t *testing.T) {
	spec, _ := LoadSpec()
	ck, err := NewChecker(spec)
	if err != nil {
		t.Fatal(err)
	}
	feb := Period{Start: time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)}
	for _, c := range []struct {
		name, rec, from string
		take            bool
		want            map[string]string // column → value ("<null>" for null)
	}{
		{"covered usage from amortized", legacyCovered, string(metric.AmortizedCost), true, map[string]string{
			"BilledCost": "0", "EffectiveCost": "1.37088", "ChargeCategory": "Usage", "ChargeClass": "<null>",
			"CommitmentDiscountStatus": "Used", "CommitmentDiscountType": "Reservation", "CommitmentDiscountCategory": "Usage",
			"PricingCategory": "Committed", "ChargeFrequency": "Usage-Based", "x_AmortizationClass": "Amortized Charge",
			"ChargePeriodStart": "2024-01-09T00:00:00Z", "ChargePeriodEnd": "2024-01-10T00:00:00Z",
			"BillingPeriodStart": "2024-01-01T00:00:00Z", "BillingPeriodEnd": "2024-02-01T00:00:00Z",
			"BillingAccountId": "/providers/Microsoft.Billing/billingAccounts/8608480", "BillingAccountType": "Billing Account",
			"ContractedCost": "1.8432", "ListCost": "2.304", "ListUnitPrice": "0.096", "PricingQuantity": "24", "PricingUnit": "Hours",
			"x_PricingUnitDescription": "1 Hour", "ConsumedQuantity": "24", "RegionId": "eastus", "RegionName": "East US",
			"ServiceName": "Virtual Machines", "ServiceCategory": "Compute", "ResourceType": "Microsoft.Compute/virtualMachines",
			"SubAccountId": "/subscriptions/s1", "SkuMeter": "D2s v3", "SkuPriceDetails": `{"x_ServiceType":"Standard_D2s_v3","x_VCPUs":2}`,
			"Tags": `{"env":"prod"}`, "InvoiceId": "<null>", "PublisherName": "Microsoft", "x_SourceMetric": "amortizedcost",
		}},
		{"covered usage is not read from actual", legacyCovered, string(metric.ActualCost), false, nil},
		{"covered usage without pricingModel (api-versions before 2021-10-01)", strings.Replace(legacyCovered, `,"pricingModel":"Reservation"`, "", 1),
			string(metric.AmortizedCost), true, map[string]string{"PricingCategory": "Committed", "BilledCost": "0", "EffectiveCost": "1.37088",
				"CommitmentDiscountStatus": "Used", "x_AmortizationClass": "Amortized Charge", "CommitmentDiscountType": "Reservation"}},
		{"on-demand usage without pricingModel", strings.NewReplacer(`,"pricingModel":"Reservation"`, "", `"reservationId":"r1"`, `"reservationId":""`,
			`"benefitId":"/providers/Microsoft.Capacity/reservationOrders/o1/reservations/r1"`, `"benefitId":""`).Replace(legacyCovered),
			string(metric.AmortizedCost), true, map[string]string{"PricingCategory": "Standard", "BilledCost": "1.37088", "EffectiveCost": "1.37088",
				"CommitmentDiscountStatus": "<null>", "CommitmentDiscountId": "<null>", "x_AmortizationClass": "<null>"}},
		{"refund from actual", modernRefund, string(metric.ActualCost), true, map[string]string{
			"BilledCost": "-38.25", "EffectiveCost": "0", "ChargeCategory": "Purchase", "ChargeClass": "Correction",
			"ChargeFrequency": "One-Time", "CommitmentDiscountStatus": "<null>", "x_AmortizationClass": "Principal",
			"BillingAccountId":   "/providers/Microsoft.Billing/billingAccounts/1234:56789_2019-05-31/billingProfiles/AB12",
			"BillingAccountType": "Billing Profile", "BillingCurrency": "EUR", "PricingCurrency": "USD", "InvoiceId": "G100",
			"ContractedUnitPrice": "38.25", "ContractedCost": "-38.25", "ConsumedQuantity": "<null>", "x_BilledCostInUsd": "-42.5",
			"ServiceName": "Reservations", "ServiceCategory": "Other", "SubAccountId": "/subscriptions/s2", "RegionId": "<null>",
		}},
		{"refund is not read from amortized", modernRefund, string(metric.AmortizedCost), false, nil},
		{"unused savings plan without a subscription", modernUnusedSP, string(metric.AmortizedCost), true, map[string]string{
			"BilledCost": "0", "EffectiveCost": "3.15", "ChargeCategory": "Usage", "CommitmentDiscountStatus": "Unused",
			"CommitmentDiscountType": "Savings Plan", "CommitmentDiscountCategory": "Spend", "ChargeFrequency": "Usage-Based",
			"SubAccountId": "<null>", "SubAccountType": "<null>", "x_AmortizationClass": "<null>", "x_EffectiveCostInUsd": "3.5",
			"BillingPeriodStart": "2024-02-01T00:00:00Z", "BillingPeriodEnd": "2024-03-01T00:00:00Z", "PublisherName": "Microsoft",
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			row, ok, err := Convert([]byte(c.rec), metric.Metric(c.from), feb)
			if err != nil {
				t.Fatal(err)
			}
			if ok != c.take {
				t.Fatalf("taken %v, want %v", ok, c.take)
			}
			if !ok {
				return
			}
			for col, want := range c.want {
				got, nonNull := row.Get(col)
				if !nonNull {
					got = "<null>"
				}
				if got != want {
					t.Errorf("%s = %s, want %s", col, got, want)
				}
			}
			if bad := ck.Row(row); len(bad) > 0 {
				t.Errorf("row breaks the table: %v", bad)
			}
			// The line reads back to the same row.
			back, err := ParseLine(row.AppendJSON(nil))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(back.cells, row.cells) {
				t.Errorf("line does not read back:\n%v\n%v", back.cells, row.cells)
			}
		})
	}
	if _, _, err := Convert([]byte(`{"properties":{}}`), metric.AmortizedCost, feb); err == nil {
		t.Error("a record without kind was accepted")
	}
}
