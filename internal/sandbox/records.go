package sandbox

import (
	"slices"
	"time"

	"github.com/go-json-experiment/json/jsontext"
)

// Record shapes. Each shape is the ordered property list of one model in one api-version,
// exactly as consumption-api.md §3.3 lists it:
//
//   - legacy (kind "legacy"): 46 properties from 2021-10-01 on, 42 in 2019-10-01 (no payGPrice,
//     benefitId, benefitName, pricingModel);
//   - modern (kind "modern"): 72 from 2021-10-01 on, 65 in 2019-10-01 (no effectivePrice,
//     pricingModel, payGPrice, benefitId, benefitName, provider, costAllocationRuleName);
//   - 2018-06-30 (no kind): 27.
//
// Every record carries every property of its shape (empty strings where the real API writes
// them, `meterDetails: null` unless expanded). `additionalInfo` (2018-06-30:
// `additionalProperties`) is always present: the published modern example carries it without
// $expand, and an exporter must not depend on $expand for it. `meterDetails` is null unless
// $expand names meterDetails ("meterDetails" or "properties/meterDetails").
//
// The envelope is {"id","name","type","kind","tags","properties"} in that order (no "kind" in
// 2018-06-30), compact, with no HTML escaping. A record's bytes depend only on the row, the
// api-version and $expand, never on the scope or date dialect that selected it: legacy ids are
// /subscriptions/{id}/providers/Microsoft.Billing/billingPeriods/{yyyyMM}/providers/
// Microsoft.Consumption/usageDetails/{name} (as in the published management-group example),
// modern ids are rooted at the MCA billing account. (The real service roots ids at the request
// scope in some examples; a lossless exporter keeps whatever it gets.)

// enc appends field values either as JSON or as CSV cells.
type enc struct {
	b   []byte
	csv bool
}

// recCtx is what a field needs besides the row.
type recCtx struct {
	r           *row
	expandMeter bool
	open        bool // the row's month is the current (open) month
}

type field struct {
	name string
	key  string // `"name":`
	put  func(e *enc, c *recCtx)
}

func (e *enc) str(s string) {
	if e.csv {
		e.b = appendCSV(e.b, s)
		return
	}
	e.b = appendJSONString(e.b, s)
}

// escaped writes a string whose JSON-escaped body is esc and raw text is raw.
func (e *enc) escaped(raw, esc string) {
	if e.csv {
		e.b = appendCSV(e.b, raw)
		return
	}
	e.b = append(e.b, '"')
	e.b = append(e.b, esc...)
	e.b = append(e.b, '"')
}

func (e *enc) num(d dec) { e.b = appendDec(e.b, d) }

// boolean writes true/false in JSON and True/False in CSV, as the Cost Details files do.
func (e *enc) boolean(v bool) {
	if e.csv {
		if v {
			e.b = append(e.b, "True"...)
		} else {
			e.b = append(e.b, "False"...)
		}
		return
	}
	if v {
		e.b = append(e.b, "true"...)
	} else {
		e.b = append(e.b, "false"...)
	}
}

func (e *enc) null() {
	if !e.csv {
		e.b = append(e.b, "null"...)
	}
}

func append2(b []byte, v int) []byte { return append(b, byte('0'+v/10), byte('0'+v%10)) }

func appendYMD(b []byte, y, m, d int) []byte {
	b = append2(b, y/100)
	b = append2(b, y%100)
	b = append(b, '-')
	b = append2(b, m)
	b = append(b, '-')
	return append2(b, d)
}

// dateStyle selects a timestamp layout of the API.
type dateStyle uint8

const (
	date7   dateStyle = iota // 2024-01-09T00:00:00.0000000Z (date, billingPeriod*Date)
	dateZ                    // 2024-01-09T00:00:00Z (exchangeRateDate, servicePeriod*Date, usageStart)
	dateEnd                  // 2024-01-09T23:59:59Z (2018-06-30 usageEnd)
)

// date writes a day. CSV cells use MM/DD/YYYY, the layout of EA cost files (anchors.md §5:
// readers accept `01/02/2006` for EA); the sandbox uses it for MCA files too.
func (e *enc) date(y, m, d int, style dateStyle) {
	if e.csv {
		e.b = append2(e.b, m)
		e.b = append(e.b, '/')
		e.b = append2(e.b, d)
		e.b = append(e.b, '/')
		e.b = append2(e.b, y/100)
		e.b = append2(e.b, y%100)
		return
	}
	e.b = append(e.b, '"')
	e.b = appendYMD(e.b, y, m, d)
	switch style {
	case date7:
		e.b = append(e.b, "T00:00:00.0000000Z"...)
	case dateZ:
		e.b = append(e.b, "T00:00:00Z"...)
	case dateEnd:
		e.b = append(e.b, "T23:59:59Z"...)
	}
	e.b = append(e.b, '"')
}

// appendJSONString appends s as a JSON string literal (RFC 8785's minimal escaping, no HTML
// escaping). The sandbox's strings are valid UTF-8, so AppendQuote's invalid-UTF-8 error cannot
// occur.
func appendJSONString(b []byte, s string) []byte {
	b, _ = jsontext.AppendQuote(b, s)
	return b
}

// appendCSV appends one CSV cell with RFC 4180 quoting (quoted when it holds a comma, quote,
// CR or LF, or starts with a space).
func appendCSV(b []byte, s string) []byte {
	need := len(s) > 0 && (s[0] == ' ' || s[0] == '\t')
	for i := 0; i < len(s) && !need; i++ {
		switch s[i] {
		case ',', '"', '\r', '\n':
			need = true
		}
	}
	if !need {
		return append(b, s...)
	}
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' {
			b = append(b, '"')
		}
		b = append(b, s[i])
	}
	return append(b, '"')
}

var monthDays = [13]int{0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}

func lastDay(y, m int) int {
	if m == 2 && y%4 == 0 && (y%100 != 0 || y%400 == 0) {
		return 29
	}
	return monthDays[m]
}

// Field helpers.

func f(name string, put func(e *enc, c *recCtx)) field {
	return field{name: name, key: `"` + name + `":`, put: put}
}

func fstr(name string, get func(c *recCtx) string) field {
	return f(name, func(e *enc, c *recCtx) { e.str(get(c)) })
}

func fconst(name, v string) field { return fstr(name, func(*recCtx) string { return v }) }

func fnum(name string, get func(c *recCtx) dec) field {
	return f(name, func(e *enc, c *recCtx) { e.num(get(c)) })
}

func resStr(get func(c *recCtx) string) func(c *recCtx) string {
	return func(c *recCtx) string {
		if !c.r.hasResource() {
			return ""
		}
		return get(c)
	}
}

var (
	fBillingPeriodStart = f("billingPeriodStartDate", func(e *enc, c *recCtx) {
		if c.r.sub.anchor > 0 {
			first, _, _ := c.r.sub.periodOf(c.r.day)
			e.date(first.Year(), int(first.Month()), first.Day(), date7)
			return
		}
		e.date(c.r.ymd[0], c.r.ymd[1], 1, date7)
	})
	fBillingPeriodEnd = f("billingPeriodEndDate", func(e *enc, c *recCtx) {
		if c.r.sub.anchor > 0 {
			_, last, _ := c.r.sub.periodOf(c.r.day)
			e.date(last.Year(), int(last.Month()), last.Day(), date7)
			return
		}
		e.date(c.r.ymd[0], c.r.ymd[1], lastDay(c.r.ymd[0], c.r.ymd[1]), date7)
	})
	fDate     = f("date", func(e *enc, c *recCtx) { e.date(c.r.ymd[0], c.r.ymd[1], c.r.ymd[2], date7) })
	fMeterID  = fstr("meterId", meterStr(func(m *meter) string { return m.id }))
	fQuantity = fnum("quantity", func(c *recCtx) dec { return c.r.quantity })
	fProduct  = fstr("product", func(c *recCtx) string {
		switch {
		case c.r.hasResource():
			return c.r.res.product
		case c.r.kind == rkMarketplace:
			return marketplaceProduct
		case c.r.kind == rkRounding:
			return "Rounding Adjustment"
		case c.r.savingsPlanRow():
			return c.r.sub.savingsPlan.orderName
		}
		return c.r.sub.reservation.orderName
	})
	fConsumedService = fstr("consumedService", func(c *recCtx) string {
		switch c.r.kind {
		case rkPurchase, rkRefund:
			return "Microsoft.Capacity"
		case rkSPPurchase, rkSPUnused:
			return "Microsoft.BillingBenefits"
		case rkMarketplace, rkRounding:
			return ""
		}
		return c.r.res.meter.service
	})
	fServiceInfo1    = fconst("serviceInfo1", "")
	fServiceInfo2    = fstr("serviceInfo2", resStr(func(c *recCtx) string { return c.r.res.meter.serviceInfo2 }))
	fAdditionalInfo  = f("additionalInfo", putAdditionalInfo)
	fResourceGroup   = fstr("resourceGroup", resStr(func(c *recCtx) string { return c.r.res.group }))
	fReservationID   = fstr("reservationId", reservationStr(func(rv *reservation) string { return rv.id }))
	fReservationName = fstr("reservationName", reservationStr(func(rv *reservation) string { return rv.name }))
	fProductOrderID  = fstr("productOrderId", commitmentStr(func(rv *reservation) string { return rv.orderID },
		func(sp *savingsPlan) string { return sp.orderID }))
	fProductOrderNm = fstr("productOrderName", commitmentStr(func(rv *reservation) string { return rv.orderName },
		func(sp *savingsPlan) string { return sp.orderName }))
	fCreditEligible = f("isAzureCreditEligible", func(e *enc, c *recCtx) {
		e.boolean(!c.r.purchaseLike() && c.r.kind != rkMarketplace)
	})
	fTerm = fstr("term", func(c *recCtx) string {
		switch c.r.kind {
		case rkPurchase, rkRefund:
			return "12"
		case rkSPPurchase:
			return "36"
		}
		return ""
	})
	fPublisherName = fstr("publisherName", func(c *recCtx) string {
		if c.r.kind == rkMarketplace {
			return marketplacePublisher
		}
		return "Microsoft"
	})
	fChargeType = fstr("chargeType", func(c *recCtx) string { return c.r.chargeType() })
	fFrequency  = fstr("frequency", func(c *recCtx) string { return c.r.frequency() })
	fPayGPrice  = fnum("payGPrice", func(c *recCtx) dec { return c.r.payGPrice })
	fBenefitID  = fstr("benefitId", func(c *recCtx) string {
		switch {
		case c.r.reserved() && c.r.purchaseLike():
			return c.r.sub.reservation.orderBenefitID()
		case c.r.reserved():
			return c.r.sub.reservation.benefitID()
		case c.r.kind == rkSPPurchase:
			return c.r.sub.savingsPlan.orderBenefitID()
		case c.r.savingsPlanRow():
			return c.r.sub.savingsPlan.benefitID()
		}
		return ""
	})
	fBenefitName = fstr("benefitName", commitmentStr(func(rv *reservation) string { return rv.name },
		func(sp *savingsPlan) string { return sp.name }))
	fSubscriptionID   = fstr("subscriptionId", subStr(func(s *subscription) string { return s.guid }))
	fSubscriptionGUID = fstr("subscriptionGuid", subStr(func(s *subscription) string { return s.guid }))
	fSubscriptionName = fstr("subscriptionName", subStr(func(s *subscription) string { return s.name }))
	fPricingModel     = fstr("pricingModel", func(c *recCtx) string { return c.r.pricingModel })
	fEffPrice         = fnum("effectivePrice", func(c *recCtx) dec { return c.r.effectivePrice })
	fUnitPrice        = fnum("unitPrice", func(c *recCtx) dec { return c.r.unitPrice })
)

// Marketplace purchase of the sandbox's commitment-holding subscriptions.
const (
	marketplaceProduct   = "Contoso NGFW - Standard Plan"
	marketplacePublisher = "Contoso Software"
)

func publisherType(c *recCtx, first string) string {
	if c.r.kind == rkMarketplace {
		return "Marketplace"
	}
	return first
}

func meterStr(get func(m *meter) string) func(c *recCtx) string {
	return func(c *recCtx) string {
		if !c.r.hasMeter() {
			return ""
		}
		return get(c.r.res.meter)
	}
}

func subStr(get func(s *subscription) string) func(c *recCtx) string {
	return func(c *recCtx) string {
		if !c.r.hasSubscription() {
			return ""
		}
		return get(c.r.sub)
	}
}

func commitmentStr(rv func(rv *reservation) string, sp func(sp *savingsPlan) string) func(c *recCtx) string {
	return func(c *recCtx) string {
		switch {
		case c.r.reserved():
			return rv(&c.r.sub.reservation)
		case c.r.savingsPlanRow():
			return sp(&c.r.sub.savingsPlan)
		}
		return ""
	}
}

func reservationStr(get func(rv *reservation) string) func(c *recCtx) string {
	return func(c *recCtx) string {
		if !c.r.reserved() {
			return ""
		}
		return get(&c.r.sub.reservation)
	}
}

func putAdditionalInfo(e *enc, c *recCtx) {
	if !c.r.hasResource() {
		e.str("")
		return
	}
	e.escaped(c.r.res.meter.additionalInfo, c.r.res.additionalInfoEscape)
}

func putMeterDetails(e *enc, c *recCtx) {
	if !c.expandMeter || e.csv {
		e.null()
		return
	}
	// Marketplace and rounding rows have no meter: the object's members are empty.
	m, none := c.r.res.meter, !c.r.hasMeter()
	pick := func(v string) string {
		if none {
			return ""
		}
		return v
	}
	e.b = append(e.b, `{"meterName":`...)
	e.str(pick(m.name))
	e.b = append(e.b, `,"meterCategory":`...)
	e.str(pick(m.category))
	e.b = append(e.b, `,"meterSubCategory":`...)
	e.str(pick(m.subCategory))
	e.b = append(e.b, `,"unitOfMeasure":`...)
	e.str(pick(m.unit))
	e.b = append(e.b, `,"serviceFamily":`...)
	e.str(pick(m.family))
	e.b = append(e.b, '}')
}

// legacyFields is LegacyUsageDetailProperties (2021-10-01 … 2024-08-01), in spec order.
var legacyFields = []field{
	fstr("billingAccountId", func(c *recCtx) string { return c.r.sub.ea.id }),
	fstr("billingAccountName", func(c *recCtx) string { return c.r.sub.ea.name }),
	fBillingPeriodStart,
	fBillingPeriodEnd,
	fstr("billingProfileId", func(c *recCtx) string { return c.r.sub.ea.id }),
	fstr("billingProfileName", func(c *recCtx) string { return c.r.sub.ea.name }),
	fstr("accountOwnerId", func(c *recCtx) string { return c.r.sub.account.owner }),
	fstr("accountName", func(c *recCtx) string { return c.r.sub.account.name }),
	fSubscriptionID,
	fSubscriptionName,
	fDate,
	fProduct,
	fstr("partNumber", meterStr(func(m *meter) string { return m.partNumber })),
	fMeterID,
	f("meterDetails", putMeterDetails),
	fQuantity,
	fEffPrice,
	fnum("cost", func(c *recCtx) dec { return c.r.cost }),
	fUnitPrice,
	fstr("billingCurrency", func(c *recCtx) string { return c.r.sub.currency }),
	fstr("resourceLocation", resStr(func(c *recCtx) string { return c.r.res.legacyLocation })),
	fConsumedService,
	fstr("resourceId", resStr(func(c *recCtx) string { return c.r.res.id })),
	fstr("resourceName", resStr(func(c *recCtx) string { return c.r.res.name })),
	fServiceInfo1,
	fServiceInfo2,
	fAdditionalInfo,
	fstr("invoiceSection", func(c *recCtx) string { return c.r.sub.dept.name }),
	fstr("costCenter", func(c *recCtx) string { return c.r.sub.account.costCenter }),
	fResourceGroup,
	fReservationID,
	fReservationName,
	fProductOrderID,
	fProductOrderNm,
	fstr("offerId", func(c *recCtx) string { return c.r.sub.offer }),
	fCreditEligible,
	fTerm,
	fPublisherName,
	fstr("publisherType", func(c *recCtx) string { return publisherType(c, "Azure") }),
	fconst("planName", ""),
	fChargeType,
	fFrequency,
	fPayGPrice,
	fBenefitID,
	fBenefitName,
	fPricingModel,
}

func customerStr(get func(cu *customer) string) func(c *recCtx) string {
	return func(c *recCtx) string {
		if c.r.sub.customer == nil {
			return ""
		}
		return get(c.r.sub.customer)
	}
}

// modernFields is ModernUsageDetailProperties (2021-10-01 … 2024-08-01), in spec order.
var modernFields = []field{
	fstr("billingAccountId", func(c *recCtx) string { return c.r.sub.mca.id }),
	fEffPrice,
	fPricingModel,
	fstr("billingAccountName", func(c *recCtx) string { return c.r.sub.mca.name }),
	fBillingPeriodStart,
	fBillingPeriodEnd,
	fstr("billingProfileId", func(c *recCtx) string { return c.r.sub.profile.id }),
	fstr("billingProfileName", func(c *recCtx) string { return c.r.sub.profile.name }),
	fSubscriptionGUID,
	fSubscriptionName,
	fDate,
	fProduct,
	fMeterID,
	fstr("meterName", meterStr(func(m *meter) string { return m.name })),
	fstr("meterRegion", func(c *recCtx) string { return c.r.sub.region.display }),
	fstr("meterCategory", meterStr(func(m *meter) string { return m.category })),
	fstr("meterSubCategory", meterStr(func(m *meter) string { return m.subCategory })),
	fstr("serviceFamily", meterStr(func(m *meter) string { return m.family })),
	fQuantity,
	fstr("unitOfMeasure", meterStr(func(m *meter) string { return m.unit })),
	fstr("instanceName", resStr(func(c *recCtx) string { return c.r.res.id })),
	fnum("costInUSD", func(c *recCtx) dec { return c.r.costUSD }),
	fUnitPrice,
	fstr("billingCurrencyCode", func(c *recCtx) string { return c.r.sub.currency }),
	fstr("resourceLocation", resStr(func(c *recCtx) string { return c.r.sub.region.name })),
	fConsumedService,
	fServiceInfo1,
	fServiceInfo2,
	fAdditionalInfo,
	fstr("invoiceSectionId", func(c *recCtx) string { return c.r.sub.section.path }),
	fstr("invoiceSectionName", func(c *recCtx) string { return c.r.sub.section.name }),
	fconst("costCenter", ""),
	fResourceGroup,
	fReservationID,
	fReservationName,
	fProductOrderID,
	fProductOrderNm,
	fCreditEligible,
	fTerm,
	fPublisherName,
	fstr("publisherType", func(c *recCtx) string { return publisherType(c, "Microsoft") }),
	fChargeType,
	fFrequency,
	fnum("costInBillingCurrency", func(c *recCtx) dec { return c.r.costBilling }),
	fnum("costInPricingCurrency", func(c *recCtx) dec { return c.r.costUSD }),
	f("exchangeRate", func(e *enc, c *recCtx) {
		if !e.csv {
			e.b = append(e.b, '"')
		}
		e.b = appendDec(e.b, c.r.rate)
		if !e.csv {
			e.b = append(e.b, '"')
		}
	}),
	f("exchangeRateDate", func(e *enc, c *recCtx) { e.date(c.r.ymd[0], c.r.ymd[1], 1, dateZ) }),
	fstr("invoiceId", func(c *recCtx) string {
		if c.open {
			return ""
		}
		return invoiceID(c.r.sub.profile, c.r.month)
	}),
	fstr("previousInvoiceId", func(c *recCtx) string {
		if c.r.kind != rkRefund {
			return ""
		}
		return invoiceID(c.r.sub.profile, c.r.month)
	}),
	fconst("pricingCurrencyCode", "USD"),
	fstr("productIdentifier", meterStr(func(m *meter) string { return m.productID })),
	fstr("resourceLocationNormalized", resStr(func(c *recCtx) string { return c.r.sub.region.display })),
	f("servicePeriodStartDate", func(e *enc, c *recCtx) { e.date(c.r.ymd[0], c.r.ymd[1], 1, dateZ) }),
	f("servicePeriodEndDate", func(e *enc, c *recCtx) {
		e.date(c.r.ymd[0], c.r.ymd[1], lastDay(c.r.ymd[0], c.r.ymd[1]), dateZ)
	}),
	fstr("customerTenantId", customerStr(func(cu *customer) string { return cu.tenant })),
	fstr("customerName", customerStr(func(cu *customer) string { return cu.name })),
	fstr("partnerTenantId", customerStr(func(cu *customer) string { return cu.partnerTenant })),
	fstr("partnerName", customerStr(func(cu *customer) string { return cu.mca.name })),
	fconst("resellerMpnId", ""),
	fconst("resellerName", ""),
	fconst("publisherId", ""),
	fnum("marketPrice", func(c *recCtx) dec { return c.r.payGPrice }),
	fnum("exchangeRatePricingToBilling", func(c *recCtx) dec { return c.r.rate }),
	fnum("paygCostInBillingCurrency", func(c *recCtx) dec { return c.r.paygBilling }),
	fnum("paygCostInUSD", func(c *recCtx) dec { return c.r.paygUSD }),
	fnum("partnerEarnedCreditRate", func(c *recCtx) dec { return dec{} }),
	fconst("partnerEarnedCreditApplied", "0"),
	fPayGPrice,
	fBenefitID,
	fBenefitName,
	fconst("provider", "Azure"),
	fconst("costAllocationRuleName", ""),
}

// fields2018 is the 2018-06-30 UsageDetailProperties, in spec order.
var fields2018 = []field{
	fstr("billingPeriodId", func(c *recCtx) string {
		_, _, name := c.r.sub.periodOf(c.r.day)
		return "/subscriptions/" + c.r.sub.guid + "/providers/Microsoft.Billing/billingPeriods/" + name
	}),
	fstr("invoiceId", func(c *recCtx) string {
		if c.open {
			return ""
		}
		next := time.Date(c.r.ymd[0], time.Month(c.r.ymd[1])+1, 1, 0, 0, 0, 0, time.UTC)
		return "/subscriptions/" + c.r.sub.guid + "/providers/Microsoft.Billing/invoices/" + next.Format("200601") + "-" + c.r.sub.ea.id
	}),
	f("usageStart", func(e *enc, c *recCtx) { e.date(c.r.ymd[0], c.r.ymd[1], c.r.ymd[2], dateZ) }),
	f("usageEnd", func(e *enc, c *recCtx) { e.date(c.r.ymd[0], c.r.ymd[1], c.r.ymd[2], dateEnd) }),
	fstr("instanceName", resStr(func(c *recCtx) string { return c.r.res.name })),
	fstr("instanceId", resStr(func(c *recCtx) string { return c.r.res.id })),
	fstr("instanceLocation", resStr(func(c *recCtx) string { return c.r.sub.region.name })),
	fstr("currency", func(c *recCtx) string { return c.r.sub.currency }),
	fnum("usageQuantity", func(c *recCtx) dec { return c.r.quantity }),
	fnum("billableQuantity", func(c *recCtx) dec { return c.r.quantity }),
	fnum("pretaxCost", func(c *recCtx) dec { return c.r.cost }),
	f("isEstimated", func(e *enc, c *recCtx) { e.boolean(c.open) }),
	fMeterID,
	f("meterDetails", func(e *enc, c *recCtx) {
		if !c.expandMeter {
			e.null()
			return
		}
		m := c.r.res.meter
		e.b = append(e.b, `{"meterName":`...)
		e.str(m.name)
		e.b = append(e.b, `,"meterCategory":`...)
		e.str(m.category)
		e.b = append(e.b, `,"meterSubCategory":`...)
		e.str(m.subCategory)
		e.b = append(e.b, `,"unit":`...)
		e.str(m.unit)
		e.b = append(e.b, `,"meterLocation":`...)
		e.str(c.r.sub.region.display)
		e.b = append(e.b, `,"totalIncludedQuantity":0,"pretaxStandardRate":`...)
		e.num(c.r.unitPrice)
		e.b = append(e.b, `,"serviceName":`...)
		e.str(m.category)
		e.b = append(e.b, `,"serviceTier":`...)
		e.str(m.subCategory)
		e.b = append(e.b, '}')
	}),
	fstr("subscriptionGuid", func(c *recCtx) string { return c.r.sub.guid }),
	fstr("subscriptionName", func(c *recCtx) string { return c.r.sub.name }),
	fstr("accountName", func(c *recCtx) string { return c.r.sub.account.name }),
	fstr("departmentName", func(c *recCtx) string { return c.r.sub.dept.name }),
	fProduct,
	fConsumedService,
	fstr("costCenter", func(c *recCtx) string { return c.r.sub.account.costCenter }),
	fstr("partNumber", func(c *recCtx) string { return c.r.res.meter.partNumber }),
	fstr("resourceGuid", func(c *recCtx) string { return c.r.res.meter.id }),
	fstr("offerId", func(c *recCtx) string { return c.r.sub.offer }),
	f("chargesBilledSeparately", func(e *enc, c *recCtx) { e.boolean(false) }),
	fstr("location", resStr(func(c *recCtx) string { return c.r.sub.region.display })),
	f("additionalProperties", putAdditionalInfo),
}

func without(fs []field, drop ...string) []field {
	return slices.DeleteFunc(slices.Clone(fs), func(f field) bool { return slices.Contains(drop, f.name) })
}

var (
	legacyFields2019 = legacyFields[:42] // stops at frequency
	modernFields2019 = without(modernFields, "effectivePrice", "pricingModel", "payGPrice", "benefitId",
		"benefitName", "provider", "costAllocationRuleName")
)

// APIVersion describes one supported usageDetails api-version.
type APIVersion struct {
	Name string
	// Has204 reports whether the version answers an empty result with 204 No Content (declared
	// from 2021-10-01 on); older versions answer 200 {"value":[]}.
	Has204 bool
	legacy []field
	modern []field
	flat   bool // 2018-06-30: one flat shape, no kind
}

// APIVersions lists the usageDetails api-versions the sandbox serves, oldest first.
var APIVersions = []APIVersion{
	{Name: "2018-06-30", flat: true, legacy: fields2018},
	{Name: "2019-10-01", legacy: legacyFields2019, modern: modernFields2019},
	{Name: "2021-10-01", Has204: true, legacy: legacyFields, modern: modernFields},
	{Name: "2023-05-01", Has204: true, legacy: legacyFields, modern: modernFields},
	{Name: "2023-11-01", Has204: true, legacy: legacyFields, modern: modernFields},
	{Name: "2024-08-01", Has204: true, legacy: legacyFields, modern: modernFields},
}

// LatestAPIVersion is the newest api-version; GroundTruth uses its shapes.
const LatestAPIVersion = "2024-08-01"

func lookupVersion(name string) *APIVersion {
	for i := range APIVersions {
		if APIVersions[i].Name == name {
			return &APIVersions[i]
		}
	}
	return nil
}

// PropertyNames returns the property names, in order, of the records an api-version serves for
// kind "legacy" or "modern" (2018-06-30: kind is ignored). It returns nil for an unknown
// version or kind.
func PropertyNames(apiVersion, kind string) []string {
	v := lookupVersion(apiVersion)
	if v == nil {
		return nil
	}
	fs := v.legacy
	if !v.flat {
		switch kind {
		case "legacy":
		case "modern":
			fs = v.modern
		default:
			return nil
		}
	}
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.name
	}
	return out
}

// appendRecord appends the JSON record of r in version v.
func appendRecord(b []byte, v *APIVersion, c *recCtx) []byte {
	return appendRecordKind(b, v, c, "", "")
}

// appendRecordKind is appendRecord with an optional override of the kind and an extra raw
// property appended to properties (for the new-record-shape fault).
func appendRecordKind(b []byte, v *APIVersion, c *recCtx, kind, extra string) []byte {
	r := c.r
	s := r.sub
	b = append(b, `{"id":"`...)
	if s.modern {
		b = append(b, "/providers/Microsoft.Billing/billingAccounts/"...)
		b = append(b, s.mca.id...)
	} else {
		b = append(b, "/subscriptions/"...)
		b = append(b, s.guid...)
		b = append(b, "/providers/Microsoft.Billing/billingPeriods/"...)
		b = appendUint(b, uint64(r.month))
	}
	b = append(b, "/providers/Microsoft.Consumption/usageDetails/"...)
	b = appendGUID(b, r.hi, r.lo)
	b = append(b, `","name":"`...)
	b = appendGUID(b, r.hi, r.lo)
	b = append(b, `","type":"Microsoft.Consumption/usageDetails"`...)
	fs := v.legacy
	if !v.flat {
		if kind == "" {
			kind = "legacy"
			if s.modern {
				kind = "modern"
			}
		}
		if s.modern {
			fs = v.modern
		}
		b = append(b, `,"kind":"`...)
		b = append(b, kind...)
		b = append(b, '"')
	}
	b = append(b, `,"tags":`...)
	if r.hasResource() {
		b = append(b, r.res.tags...)
	} else {
		b = append(b, "{}"...)
	}
	b = append(b, `,"properties":{`...)
	e := enc{b: b}
	for i := range fs {
		if i > 0 {
			e.b = append(e.b, ',')
		}
		e.b = append(e.b, fs[i].key...)
		fs[i].put(&e, c)
	}
	if extra != "" {
		e.b = append(e.b, ',')
		e.b = append(e.b, extra...)
	}
	return append(e.b, "}}"...)
}

func appendCSVHeader(b []byte, cols []field) []byte {
	for i, f := range cols {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, f.name...)
	}
	return append(b, '\r', '\n')
}

func appendCSVRow(b []byte, cols []field, c *recCtx) []byte {
	e := enc{b: b, csv: true}
	for i := range cols {
		if i > 0 {
			e.b = append(e.b, ',')
		}
		cols[i].put(&e, c)
	}
	return append(e.b, '\r', '\n')
}
