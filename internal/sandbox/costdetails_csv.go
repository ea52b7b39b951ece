package sandbox

import (
	"fmt"
	"slices"
	"strings"

	"github.com/usage-export/usage-export/internal/scope"
)

// The Cost Details CSV schema versions the sandbox writes. The column lists are the published
// ones (cost-details-and-focus.md §1.2 for EA, §1.3 for MCA), header names spelled and ordered as
// Microsoft's dataset-schema pages give them — not as the exporter maps them. Each column is
// filled from the same row the usageDetails records are made of, so a report and a listing of
// the same scope, days and metric describe the same charges.
//
// Cell formats follow §1.5: dates MM/DD/YYYY (period ends the inclusive last day), booleans
// True/False, numbers as decimal text, Tags as JSON members without the outer braces,
// AdditionalInfo as JSON object text; each part starts with a UTF-8 byte order mark.
const (
	// CSVSchemaEA20211001 is the EA 2021-10-01 dataset (55 columns, its documented order).
	CSVSchemaEA20211001 = "ea-2021-10-01"
	// CSVSchemaEA20231201 is the EA 2023-12-01-preview dataset (the same 55 names, another order).
	CSVSchemaEA20231201 = "ea-2023-12-01-preview"
	// CSVSchemaEA20240801 is the EA 2024-08-01 dataset (2023-12-01-preview + AccountId,
	// ResourceLocationNormalized). The default for EA scopes.
	CSVSchemaEA20240801 = "ea-2024-08-01"
	// CSVSchemaMCA20210101 is the MCA 2021-01-01 dataset (62 columns: 2021-10-01 without
	// benefitId, benefitName, provider).
	CSVSchemaMCA20210101 = "mca-2021-01-01"
	// CSVSchemaMCA20211001 is the MCA 2021-10-01 dataset (65 columns).
	CSVSchemaMCA20211001 = "mca-2021-10-01"
	// CSVSchemaMCA20231201 is the MCA 2023-12-01-preview dataset (the same 65 columns in the same
	// order as 2021-10-01). The default for MCA scopes.
	CSVSchemaMCA20231201 = "mca-2023-12-01-preview"
)

// CSVSchemaHeader is the request header that chooses a report's CSV schema version (one of the
// CSVSchema* names) for one generateCostDetailsReport call; Options.CostDetailsSchemaEA and
// CostDetailsSchemaMCA set the defaults. The real API has no such choice (the version follows
// the service); this is how tests meet every published version.
const CSVSchemaHeader = "X-Sandbox-Csv-Schema"

// csvSchema is one published column list.
type csvSchema struct {
	name   string
	modern bool
	cols   []field // name = the published header
}

// col renames a record field to its CSV header.
func col(header string, fs []field, prop string) field {
	i := slices.IndexFunc(fs, func(f field) bool { return f.name == prop })
	if i < 0 {
		panic("sandbox: no record field " + prop)
	}
	c := fs[i]
	c.name, c.key = header, ""
	return c
}

func meterCol(header string, get func(m *meter) string) field {
	return fstr(header, meterStr(get)) // Marketplace and rounding rows have no meter
}

// tagsCol writes the resource tags as JSON members without the outer braces, the published CSV
// form (`"env": "prod","org": "trey"`); a row without a resource has an empty cell.
var tagsCol = func(header string) field {
	return f(header, func(e *enc, c *recCtx) {
		if !c.r.hasResource() {
			e.str("")
			return
		}
		t := strings.TrimSpace(c.r.res.tags)
		t = strings.TrimSuffix(strings.TrimPrefix(t, "{"), "}")
		e.str(t)
	})
}

// eaColumns2023 is the EA 2023-12-01-preview column list, in its file order (§1.2).
var eaColumns2023 = []field{
	col("InvoiceSectionName", legacyFields, "invoiceSection"),
	col("AccountName", legacyFields, "accountName"),
	col("AccountOwnerId", legacyFields, "accountOwnerId"),
	col("SubscriptionId", legacyFields, "subscriptionId"),
	col("SubscriptionName", legacyFields, "subscriptionName"),
	col("ResourceGroup", legacyFields, "resourceGroup"),
	col("ResourceLocation", legacyFields, "resourceLocation"),
	col("Date", legacyFields, "date"),
	col("ProductName", legacyFields, "product"),
	meterCol("MeterCategory", func(m *meter) string { return m.category }),
	meterCol("MeterSubCategory", func(m *meter) string { return m.subCategory }),
	col("MeterId", legacyFields, "meterId"),
	meterCol("MeterName", func(m *meter) string { return m.name }),
	fstr("MeterRegion", func(c *recCtx) string { return c.r.sub.region.display }),
	meterCol("UnitOfMeasure", func(m *meter) string { return m.unit }),
	col("Quantity", legacyFields, "quantity"),
	col("EffectivePrice", legacyFields, "effectivePrice"),
	col("CostInBillingCurrency", legacyFields, "cost"),
	col("CostCenter", legacyFields, "costCenter"),
	col("ConsumedService", legacyFields, "consumedService"),
	col("ResourceId", legacyFields, "resourceId"),
	tagsCol("Tags"),
	col("OfferId", legacyFields, "offerId"),
	col("AdditionalInfo", legacyFields, "additionalInfo"),
	col("ServiceInfo1", legacyFields, "serviceInfo1"),
	col("ServiceInfo2", legacyFields, "serviceInfo2"),
	col("ResourceName", legacyFields, "resourceName"),
	col("ReservationId", legacyFields, "reservationId"),
	col("ReservationName", legacyFields, "reservationName"),
	col("UnitPrice", legacyFields, "unitPrice"),
	col("ProductOrderId", legacyFields, "productOrderId"),
	col("ProductOrderName", legacyFields, "productOrderName"),
	col("Term", legacyFields, "term"),
	col("PublisherType", legacyFields, "publisherType"),
	col("PublisherName", legacyFields, "publisherName"),
	col("ChargeType", legacyFields, "chargeType"),
	col("Frequency", legacyFields, "frequency"),
	col("PricingModel", legacyFields, "pricingModel"),
	fconst("AvailabilityZone", ""),
	col("BillingAccountId", legacyFields, "billingAccountId"),
	col("BillingAccountName", legacyFields, "billingAccountName"),
	col("BillingCurrencyCode", legacyFields, "billingCurrency"),
	col("BillingPeriodStartDate", legacyFields, "billingPeriodStartDate"),
	col("BillingPeriodEndDate", legacyFields, "billingPeriodEndDate"),
	col("BillingProfileId", legacyFields, "billingProfileId"),
	col("BillingProfileName", legacyFields, "billingProfileName"),
	fstr("InvoiceSectionId", func(c *recCtx) string { return c.r.sub.dept.id }),
	col("IsAzureCreditEligible", legacyFields, "isAzureCreditEligible"),
	col("PartNumber", legacyFields, "partNumber"),
	col("PayGPrice", legacyFields, "payGPrice"),
	col("PlanName", legacyFields, "planName"),
	meterCol("ServiceFamily", func(m *meter) string { return m.family }),
	fconst("CostAllocationRuleName", ""),
	col("benefitId", legacyFields, "benefitId"),
	col("benefitName", legacyFields, "benefitName"),
}

// eaOrder2021 is the documented EA 2021-10-01 file order (§1.2).
var eaOrder2021 = []string{
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

// mcaColumns2021 is the MCA 2021-10-01 / 2023-12-01-preview column list, in file order (§1.3).
var mcaColumns2021 = []field{
	col("invoiceId", modernFields, "invoiceId"),
	col("previousInvoiceId", modernFields, "previousInvoiceId"),
	col("billingAccountId", modernFields, "billingAccountId"),
	col("billingAccountName", modernFields, "billingAccountName"),
	col("billingProfileId", modernFields, "billingProfileId"),
	col("billingProfileName", modernFields, "billingProfileName"),
	col("invoiceSectionId", modernFields, "invoiceSectionId"),
	col("invoiceSectionName", modernFields, "invoiceSectionName"),
	col("resellerName", modernFields, "resellerName"),
	col("resellerMpnId", modernFields, "resellerMpnId"),
	col("costCenter", modernFields, "costCenter"),
	col("billingPeriodEndDate", modernFields, "billingPeriodEndDate"),
	col("billingPeriodStartDate", modernFields, "billingPeriodStartDate"),
	col("servicePeriodEndDate", modernFields, "servicePeriodEndDate"),
	col("servicePeriodStartDate", modernFields, "servicePeriodStartDate"),
	col("date", modernFields, "date"),
	col("serviceFamily", modernFields, "serviceFamily"),
	col("productOrderId", modernFields, "productOrderId"),
	col("productOrderName", modernFields, "productOrderName"),
	col("consumedService", modernFields, "consumedService"),
	col("meterId", modernFields, "meterId"),
	col("meterName", modernFields, "meterName"),
	col("meterCategory", modernFields, "meterCategory"),
	col("meterSubCategory", modernFields, "meterSubCategory"),
	col("meterRegion", modernFields, "meterRegion"),
	col("ProductId", modernFields, "productIdentifier"),
	col("ProductName", modernFields, "product"),
	col("SubscriptionId", modernFields, "subscriptionGuid"),
	col("subscriptionName", modernFields, "subscriptionName"),
	col("publisherType", modernFields, "publisherType"),
	col("publisherId", modernFields, "publisherId"),
	col("publisherName", modernFields, "publisherName"),
	col("resourceGroupName", modernFields, "resourceGroup"),
	col("ResourceId", modernFields, "instanceName"),
	col("resourceLocation", modernFields, "resourceLocation"),
	col("location", modernFields, "resourceLocationNormalized"),
	col("effectivePrice", modernFields, "effectivePrice"),
	col("quantity", modernFields, "quantity"),
	col("unitOfMeasure", modernFields, "unitOfMeasure"),
	col("chargeType", modernFields, "chargeType"),
	col("billingCurrency", modernFields, "billingCurrencyCode"),
	col("pricingCurrency", modernFields, "pricingCurrencyCode"),
	col("costInBillingCurrency", modernFields, "costInBillingCurrency"),
	col("costInPricingCurrency", modernFields, "costInPricingCurrency"),
	col("costInUsd", modernFields, "costInUSD"),
	col("paygCostInBillingCurrency", modernFields, "paygCostInBillingCurrency"),
	col("paygCostInUsd", modernFields, "paygCostInUSD"),
	col("exchangeRatePricingToBilling", modernFields, "exchangeRatePricingToBilling"),
	col("exchangeRateDate", modernFields, "exchangeRateDate"),
	col("isAzureCreditEligible", modernFields, "isAzureCreditEligible"),
	col("serviceInfo1", modernFields, "serviceInfo1"),
	col("serviceInfo2", modernFields, "serviceInfo2"),
	col("additionalInfo", modernFields, "additionalInfo"),
	tagsCol("tags"),
	col("PayGPrice", modernFields, "payGPrice"),
	col("frequency", modernFields, "frequency"),
	col("term", modernFields, "term"),
	col("reservationId", modernFields, "reservationId"),
	col("reservationName", modernFields, "reservationName"),
	col("pricingModel", modernFields, "pricingModel"),
	col("unitPrice", modernFields, "unitPrice"),
	col("costAllocationRuleName", modernFields, "costAllocationRuleName"),
	col("benefitId", modernFields, "benefitId"),
	col("benefitName", modernFields, "benefitName"),
	col("provider", modernFields, "provider"),
}

// reorder returns the columns of cols in the order of names.
func reorder(cols []field, names []string) []field {
	if len(cols) != len(names) {
		panic(fmt.Sprintf("sandbox: reorder %d columns by %d names", len(cols), len(names)))
	}
	out := make([]field, len(names))
	for i, n := range names {
		j := slices.IndexFunc(cols, func(f field) bool { return f.name == n })
		if j < 0 {
			panic("sandbox: no column " + n)
		}
		out[i] = cols[j]
	}
	return out
}

func withoutCols(cols []field, drop ...string) []field {
	return slices.DeleteFunc(slices.Clone(cols), func(f field) bool { return slices.Contains(drop, f.name) })
}

var csvSchemas = []csvSchema{
	{name: CSVSchemaEA20211001, cols: reorder(eaColumns2023, eaOrder2021)},
	{name: CSVSchemaEA20231201, cols: eaColumns2023},
	{name: CSVSchemaEA20240801, cols: append(slices.Clone(eaColumns2023),
		fstr("AccountId", func(c *recCtx) string { return c.r.sub.account.id }),
		fstr("ResourceLocationNormalized", resStr(func(c *recCtx) string { return c.r.sub.region.display })),
	)},
	{name: CSVSchemaMCA20210101, modern: true, cols: withoutCols(mcaColumns2021, "benefitId", "benefitName", "provider")},
	{name: CSVSchemaMCA20211001, modern: true, cols: mcaColumns2021},
	{name: CSVSchemaMCA20231201, modern: true, cols: mcaColumns2021},
}

// CSVSchemas lists the Cost Details CSV schema versions the sandbox can write.
func CSVSchemas() []string {
	out := make([]string, len(csvSchemas))
	for i, s := range csvSchemas {
		out[i] = s.name
	}
	return out
}

// CSVHeaders returns the published header names of a schema version, in file order, or nil.
func CSVHeaders(schema string) []string {
	s := lookupCSVSchema(schema)
	if s == nil {
		return nil
	}
	out := make([]string, len(s.cols))
	for i, c := range s.cols {
		out[i] = c.name
	}
	return out
}

func lookupCSVSchema(name string) *csvSchema {
	for i := range csvSchemas {
		if strings.EqualFold(csvSchemas[i].name, name) {
			return &csvSchemas[i]
		}
	}
	return nil
}

// csvSchemaFor picks the schema of a report: the requested one (it must fit the agreement), else
// the default of the agreement.
func (s *Server) csvSchemaFor(requested string, modern bool) (*csvSchema, error) {
	name := requested
	if name == "" {
		name = s.o.CostDetailsSchemaEA
		if modern {
			name = s.o.CostDetailsSchemaMCA
		}
	}
	cs := lookupCSVSchema(name)
	if cs == nil {
		return nil, fmt.Errorf("unknown CSV schema %q: want one of %s", name, strings.Join(CSVSchemas(), ", "))
	}
	if cs.modern != modern {
		return nil, fmt.Errorf("CSV schema %q is for %s scopes", name, map[bool]string{false: "EA", true: "MCA"}[cs.modern])
	}
	return cs, nil
}

// byteOrderMark starts every CSV part, as in the published sample files.
const byteOrderMark = "\ufeff"

// Agreements of a scope (Server.Agreement).
const (
	AgreementEA   = "EA"
	AgreementMCA  = "MCA"
	AgreementPAYG = "PAYG" // pay-as-you-go (Web Direct): Cost Details refuses it
)

// Agreement returns the agreement of a scope's subscriptions (the first one's, for a scope
// that spans several), or "" for an unknown scope.
func (s *Server) Agreement(sc scope.Scope) string {
	subs, err := s.w.resolve(sc)
	switch {
	case err != nil || len(subs) == 0:
		return ""
	case subs[0].anchor > 0:
		return AgreementPAYG
	case subs[0].modern:
		return AgreementMCA
	}
	return AgreementEA
}
