package costdetails

import (
	"slices"
	"strings"
)

// The Cost Details CSV schema versions this package reads, each an explicit table from the
// published header to the usageDetails JSON property of the same agreement (2024-08-01:
// LegacyUsageDetailProperties for EA files, kind "legacy"; ModernUsageDetailProperties for MCA
// files, kind "modern"). Source: the dataset-schema pages as tabulated in the team's
// cost-details-and-focus.md §1.2 (EA) and §1.3 (MCA). docs/output-format.md lists the mapping.
//
// A column maps to one of:
//   - a property under "properties" (its value typed as the swagger declares it);
//   - a member of the legacy "meterDetails" object (EA MeterName, MeterCategory,
//     MeterSubCategory, UnitOfMeasure, ServiceFamily), where the API puts them with
//     $expand=properties/meterDetails;
//   - the record's "tags" object (Tags), outside "properties";
//   - nothing in the JSON (EA MeterRegion, AvailabilityZone, InvoiceSectionId,
//     CostAllocationRuleName, AccountId, ResourceLocationNormalized): such a column is kept under
//     its published name in the line's "costDetailsColumns" object, never dropped.

// Schema is one published Cost Details CSV column set.
type Schema struct {
	// Name is "ea-<version>" or "mca-<version>".
	Name string
	// Kind is the usageDetails record kind of the agreement: "legacy" (EA) or "modern" (MCA).
	Kind string
	// Columns are the published headers in file order.
	Columns []Column
}

// Column is one published header and where its cells go.
type Column struct {
	Header string // as published
	// Property is the usageDetails property ("meterDetails.meterName" for a member of the
	// legacy meterDetails object, "tags" for the envelope tags, "" for no JSON counterpart).
	Property string
	// Aliases are other spellings of the header met in older files of the same meaning (matched
	// like the header: ignoring case, a BOM and a localised "Name (Header)" form).
	Aliases []string
}

// Record kinds of the usageDetails API.
const (
	KindLegacy = "legacy"
	KindModern = "modern"
)

// ExtraColumnsMember is the top-level member of a Cost Details line that holds the columns with
// no usageDetails counterpart, under their published header names.
const ExtraColumnsMember = "costDetailsColumns"

// eaColumns is the EA 2023-12-01-preview column set in its file order (§1.2).
var eaColumns = []Column{
	{"InvoiceSectionName", "invoiceSection", []string{"DepartmentName", "InvoiceSection"}},
	{"AccountName", "accountName", nil},
	{"AccountOwnerId", "accountOwnerId", nil},
	{"SubscriptionId", "subscriptionId", []string{"SubscriptionGuid"}},
	{"SubscriptionName", "subscriptionName", nil},
	{"ResourceGroup", "resourceGroup", nil},
	{"ResourceLocation", "resourceLocation", nil},
	{"Date", "date", []string{"UsageDateTime"}},
	{"ProductName", "product", []string{"Product"}},
	{"MeterCategory", "meterDetails.meterCategory", nil},
	{"MeterSubCategory", "meterDetails.meterSubCategory", nil},
	{"MeterId", "meterId", nil},
	{"MeterName", "meterDetails.meterName", nil},
	{"MeterRegion", "", nil},
	{"UnitOfMeasure", "meterDetails.unitOfMeasure", nil},
	{"Quantity", "quantity", []string{"UsageQuantity"}},
	{"EffectivePrice", "effectivePrice", []string{"ResourceRate"}},
	{"CostInBillingCurrency", "cost", []string{"Cost", "PreTaxCost"}},
	{"CostCenter", "costCenter", nil},
	{"ConsumedService", "consumedService", nil},
	{"ResourceId", "resourceId", []string{"InstanceId"}},
	{"Tags", "tags", nil},
	{"OfferId", "offerId", nil},
	{"AdditionalInfo", "additionalInfo", nil},
	{"ServiceInfo1", "serviceInfo1", nil},
	{"ServiceInfo2", "serviceInfo2", nil},
	{"ResourceName", "resourceName", nil},
	{"ReservationId", "reservationId", nil},
	{"ReservationName", "reservationName", nil},
	{"UnitPrice", "unitPrice", nil},
	{"ProductOrderId", "productOrderId", nil},
	{"ProductOrderName", "productOrderName", nil},
	{"Term", "term", nil},
	{"PublisherType", "publisherType", nil},
	{"PublisherName", "publisherName", nil},
	{"ChargeType", "chargeType", nil},
	{"Frequency", "frequency", nil},
	{"PricingModel", "pricingModel", nil},
	{"AvailabilityZone", "", nil},
	{"BillingAccountId", "billingAccountId", nil},
	{"BillingAccountName", "billingAccountName", nil},
	{"BillingCurrencyCode", "billingCurrency", []string{"BillingCurrency", "Currency"}},
	{"BillingPeriodStartDate", "billingPeriodStartDate", nil},
	{"BillingPeriodEndDate", "billingPeriodEndDate", nil},
	{"BillingProfileId", "billingProfileId", nil},
	{"BillingProfileName", "billingProfileName", nil},
	{"InvoiceSectionId", "", nil},
	{"IsAzureCreditEligible", "isAzureCreditEligible", nil},
	{"PartNumber", "partNumber", nil},
	{"PayGPrice", "payGPrice", nil},
	{"PlanName", "planName", nil},
	{"ServiceFamily", "meterDetails.serviceFamily", nil},
	{"CostAllocationRuleName", "", nil},
	{"benefitId", "benefitId", nil},
	{"benefitName", "benefitName", nil},
}

// eaOrder20211001 is the documented EA 2021-10-01 file order (§1.2).
var eaOrder20211001 = []string{
	"CostInBillingCurrency", "AccountName", "AccountOwnerId", "ProductName", "ConsumedService",
	"InvoiceSectionName", "SubscriptionId", "SubscriptionName", "Date", "MeterId", "MeterCategory",
	"MeterSubCategory", "MeterRegion", "MeterName", "Quantity", "ResourceLocation", "ResourceId",
	"ServiceInfo1", "ServiceInfo2", "AdditionalInfo", "Tags", "CostCenter", "UnitOfMeasure",
	"ResourceGroup", "PartNumber", "OfferId", "ChargeType", "EffectivePrice", "UnitPrice",
	"ReservationId", "ReservationName", "ResourceName", "ProductOrderId", "ProductOrderName",
	"PlanName", "PublisherName", "PublisherType", "Term", "BillingAccountId", "BillingAccountName",
	"BillingProfileName", "BillingProfileId", "BillingCurrencyCode", "ServiceFamily", "Frequency",
	"IsAzureCreditEligible", "PayGPrice", "PricingModel", "BillingPeriodStartDate",
	"BillingPeriodEndDate", "AvailabilityZone", "InvoiceSectionId", "CostAllocationRuleName",
	"benefitId", "benefitName",
}

// mcaColumns is the MCA 2021-10-01 / 2023-12-01-preview column set in file order (§1.3).
var mcaColumns = []Column{
	{"invoiceId", "invoiceId", nil},
	{"previousInvoiceId", "previousInvoiceId", nil},
	{"billingAccountId", "billingAccountId", nil},
	{"billingAccountName", "billingAccountName", nil},
	{"billingProfileId", "billingProfileId", nil},
	{"billingProfileName", "billingProfileName", nil},
	{"invoiceSectionId", "invoiceSectionId", nil},
	{"invoiceSectionName", "invoiceSectionName", nil},
	{"resellerName", "resellerName", nil},
	{"resellerMpnId", "resellerMpnId", nil},
	{"costCenter", "costCenter", nil},
	{"billingPeriodEndDate", "billingPeriodEndDate", nil},
	{"billingPeriodStartDate", "billingPeriodStartDate", nil},
	{"servicePeriodEndDate", "servicePeriodEndDate", nil},
	{"servicePeriodStartDate", "servicePeriodStartDate", nil},
	{"date", "date", nil},
	{"serviceFamily", "serviceFamily", nil},
	{"productOrderId", "productOrderId", nil},
	{"productOrderName", "productOrderName", nil},
	{"consumedService", "consumedService", nil},
	{"meterId", "meterId", nil},
	{"meterName", "meterName", nil},
	{"meterCategory", "meterCategory", nil},
	{"meterSubCategory", "meterSubCategory", nil},
	{"meterRegion", "meterRegion", nil},
	{"ProductId", "productIdentifier", nil},
	{"ProductName", "product", []string{"Product"}},
	{"SubscriptionId", "subscriptionGuid", []string{"SubscriptionGuid"}},
	{"subscriptionName", "subscriptionName", nil},
	{"publisherType", "publisherType", nil},
	{"publisherId", "publisherId", nil},
	{"publisherName", "publisherName", nil},
	{"resourceGroupName", "resourceGroup", []string{"ResourceGroup"}},
	{"ResourceId", "instanceName", []string{"InstanceName"}},
	{"resourceLocation", "resourceLocation", nil},
	{"location", "resourceLocationNormalized", nil},
	{"effectivePrice", "effectivePrice", nil},
	{"quantity", "quantity", nil},
	{"unitOfMeasure", "unitOfMeasure", nil},
	{"chargeType", "chargeType", nil},
	{"billingCurrency", "billingCurrencyCode", []string{"BillingCurrencyCode"}},
	{"pricingCurrency", "pricingCurrencyCode", []string{"PricingCurrencyCode"}},
	{"costInBillingCurrency", "costInBillingCurrency", nil},
	{"costInPricingCurrency", "costInPricingCurrency", nil},
	{"costInUsd", "costInUSD", nil},
	{"paygCostInBillingCurrency", "paygCostInBillingCurrency", nil},
	{"paygCostInUsd", "paygCostInUSD", nil},
	{"exchangeRatePricingToBilling", "exchangeRatePricingToBilling", []string{"ExchangeRate"}},
	{"exchangeRateDate", "exchangeRateDate", nil},
	{"isAzureCreditEligible", "isAzureCreditEligible", nil},
	{"serviceInfo1", "serviceInfo1", nil},
	{"serviceInfo2", "serviceInfo2", nil},
	{"additionalInfo", "additionalInfo", nil},
	{"tags", "tags", nil},
	{"PayGPrice", "payGPrice", []string{"MarketPrice"}},
	{"frequency", "frequency", nil},
	{"term", "term", nil},
	{"reservationId", "reservationId", nil},
	{"reservationName", "reservationName", nil},
	{"pricingModel", "pricingModel", nil},
	{"unitPrice", "unitPrice", nil},
	{"costAllocationRuleName", "costAllocationRuleName", nil},
	{"benefitId", "benefitId", nil},
	{"benefitName", "benefitName", nil},
	{"provider", "provider", nil},
}

func pick(cols []Column, headers []string) []Column {
	out := make([]Column, len(headers))
	for i, h := range headers {
		j := slices.IndexFunc(cols, func(c Column) bool { return c.Header == h })
		if j < 0 {
			panic("costdetails: no column " + h)
		}
		out[i] = cols[j]
	}
	return out
}

func dropColumns(cols []Column, drop ...string) []Column {
	return slices.DeleteFunc(slices.Clone(cols), func(c Column) bool { return slices.Contains(drop, c.Header) })
}

// Schemas are the schema versions ConvertCSV recognises. A file is read with the schema whose
// every column it has (by header or alias); when several fit, the one with the most columns,
// then the one whose order the file follows.
var Schemas = []Schema{
	// 2020-01-01 (52) and 2021-01-01 (53) are positions 1–52 / 1–53 of the 2023-12-01-preview
	// order (§1.2).
	{Name: "ea-2020-01-01", Kind: KindLegacy, Columns: slices.Clone(eaColumns[:52])},
	{Name: "ea-2021-01-01", Kind: KindLegacy, Columns: slices.Clone(eaColumns[:53])},
	{Name: "ea-2021-10-01", Kind: KindLegacy, Columns: pick(eaColumns, eaOrder20211001)},
	{Name: "ea-2023-12-01-preview", Kind: KindLegacy, Columns: slices.Clone(eaColumns)},
	{Name: "ea-2024-08-01", Kind: KindLegacy, Columns: append(slices.Clone(eaColumns),
		Column{"AccountId", "", nil}, Column{"ResourceLocationNormalized", "", nil})},
	// 2021-01-01 (62): 2021-10-01 without benefitId, benefitName, provider (§1.3).
	{Name: "mca-2021-01-01", Kind: KindModern, Columns: dropColumns(mcaColumns, "benefitId", "benefitName", "provider")},
	{Name: "mca-2021-10-01", Kind: KindModern, Columns: slices.Clone(mcaColumns)},
	{Name: "mca-2023-12-01-preview", Kind: KindModern, Columns: slices.Clone(mcaColumns)},
}

// legacyProperties is LegacyUsageDetailProperties (2021-10-01 … 2024-08-01) in spec order: the
// order of properties in a line (consumption-api.md §3.3).
var legacyProperties = []string{
	"billingAccountId", "billingAccountName", "billingPeriodStartDate", "billingPeriodEndDate",
	"billingProfileId", "billingProfileName", "accountOwnerId", "accountName", "subscriptionId",
	"subscriptionName", "date", "product", "partNumber", "meterId", "meterDetails", "quantity",
	"effectivePrice", "cost", "unitPrice", "billingCurrency", "resourceLocation", "consumedService",
	"resourceId", "resourceName", "serviceInfo1", "serviceInfo2", "additionalInfo", "invoiceSection",
	"costCenter", "resourceGroup", "reservationId", "reservationName", "productOrderId",
	"productOrderName", "offerId", "isAzureCreditEligible", "term", "publisherName", "publisherType",
	"planName", "chargeType", "frequency", "payGPrice", "benefitId", "benefitName", "pricingModel",
}

// meterDetailsMembers is MeterDetailsResponse in spec order.
var meterDetailsMembers = []string{"meterName", "meterCategory", "meterSubCategory", "unitOfMeasure", "serviceFamily"}

// modernProperties is ModernUsageDetailProperties (2021-10-01 … 2024-08-01) in spec order.
var modernProperties = []string{
	"billingAccountId", "effectivePrice", "pricingModel", "billingAccountName",
	"billingPeriodStartDate", "billingPeriodEndDate", "billingProfileId", "billingProfileName",
	"subscriptionGuid", "subscriptionName", "date", "product", "meterId", "meterName", "meterRegion",
	"meterCategory", "meterSubCategory", "serviceFamily", "quantity", "unitOfMeasure", "instanceName",
	"costInUSD", "unitPrice", "billingCurrencyCode", "resourceLocation", "consumedService",
	"serviceInfo1", "serviceInfo2", "additionalInfo", "invoiceSectionId", "invoiceSectionName",
	"costCenter", "resourceGroup", "reservationId", "reservationName", "productOrderId",
	"productOrderName", "isAzureCreditEligible", "term", "publisherName", "publisherType", "chargeType",
	"frequency", "costInBillingCurrency", "costInPricingCurrency", "exchangeRate", "exchangeRateDate",
	"invoiceId", "previousInvoiceId", "pricingCurrencyCode", "productIdentifier",
	"resourceLocationNormalized", "servicePeriodStartDate", "servicePeriodEndDate", "customerTenantId",
	"customerName", "partnerTenantId", "partnerName", "resellerMpnId", "resellerName", "publisherId",
	"marketPrice", "exchangeRatePricingToBilling", "paygCostInBillingCurrency", "paygCostInUSD",
	"partnerEarnedCreditRate", "partnerEarnedCreditApplied", "payGPrice", "benefitId", "benefitName",
	"provider", "costAllocationRuleName",
}

// derivedProperties are modern properties with no column of their own that carry another
// column's value in the API: exchangeRate is the string form of exchangeRatePricingToBilling
// (S-CONS declares both), and marketPrice is the column PayGPrice (the migration table maps
// marketPrice to PayGPrice; §2.5 #7).
var derivedProperties = map[string]string{
	"exchangeRate": "exchangeRatePricingToBilling",
	"marketPrice":  "payGPrice",
}

// LookupSchema returns the schema version named name (see Schemas), or nil.
func LookupSchema(name string) *Schema {
	for i := range Schemas {
		if strings.EqualFold(Schemas[i].Name, name) {
			return &Schemas[i]
		}
	}
	return nil
}

// Missing returns the usageDetails properties of the schema's kind that none of its columns
// gives, so its lines lack them. For every MCA version that includes the partner fields
// (customerTenantId, customerName, partnerTenantId, partnerName, partnerEarnedCreditRate,
// partnerEarnedCreditApplied), which only the partner dataset has; for older versions also
// the properties added later (EA 2020-01-01: benefitId, benefitName; MCA 2021-01-01: benefitId,
// benefitName, provider).
func (s *Schema) Missing() []string {
	props := legacyProperties
	if s.Kind == KindModern {
		props = modernProperties
	}
	have := map[string]bool{}
	for _, c := range s.Columns {
		p, _, _ := strings.Cut(c.Property, ".")
		have[p] = true
	}
	var out []string
	for _, p := range props {
		if src, ok := derivedProperties[p]; ok && have[src] {
			continue
		}
		if !have[p] {
			out = append(out, p)
		}
	}
	return out
}

// Value types of properties (consumption-api.md §3.3).
var (
	decimalProperties = setOf("quantity", "effectivePrice", "cost", "unitPrice", "payGPrice",
		"costInBillingCurrency", "costInPricingCurrency", "costInUSD", "paygCostInBillingCurrency",
		"paygCostInUSD", "marketPrice", "exchangeRatePricingToBilling", "partnerEarnedCreditRate")
	booleanProperties = setOf("isAzureCreditEligible")
	// date7Properties are date-times the API writes with seven fractional digits
	// (2019-04-09T00:00:00.0000000Z).
	date7Properties = setOf("date", "billingPeriodStartDate", "billingPeriodEndDate")
	// dateZProperties are date-times it writes without them (2019-09-30T00:00:00Z), as in the
	// published examples.
	dateZProperties = setOf("exchangeRateDate", "servicePeriodStartDate", "servicePeriodEndDate")
)

func setOf(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}
