package focus

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/usage-export/usage-export/internal/decimal"
)

// Input metrics a row can come from.
const (
	FromActual    = "actualcost"
	FromAmortized = "amortizedcost"
)

// Columns is the order of the columns of every line: the FOCUS columns the dataset fills, then
// the x_ columns (Microsoft's names where Microsoft's FOCUS dataset has the column, and
// x_SourceMetric, this project's). Every line has every column; a value the row has not is null.
var Columns = []string{
	"BilledCost", "BillingAccountId", "BillingAccountName", "BillingAccountType", "BillingCurrency",
	"BillingPeriodEnd", "BillingPeriodStart", "CapacityReservationId", "CapacityReservationStatus",
	"ChargeCategory", "ChargeClass", "ChargeDescription", "ChargeFrequency", "ChargePeriodEnd",
	"ChargePeriodStart", "CommitmentDiscountCategory", "CommitmentDiscountId", "CommitmentDiscountName",
	"CommitmentDiscountStatus", "CommitmentDiscountType", "ConsumedQuantity", "ConsumedUnit",
	"ContractedCost", "ContractedUnitPrice", "EffectiveCost", "InvoiceId", "InvoiceIssuerName", "ListCost",
	"ListUnitPrice", "PricingCategory", "PricingCurrency", "PricingQuantity", "PricingUnit", "ProviderName",
	"PublisherName", "RegionId", "RegionName", "ResourceId", "ResourceName", "ResourceType",
	"ServiceCategory", "ServiceName", "SkuId", "SkuMeter", "SkuPriceDetails", "SubAccountId",
	"SubAccountName", "SubAccountType", "Tags",
	"x_AccountName", "x_AccountOwnerId", "x_AmortizationClass", "x_BilledCostInUsd", "x_BillingAccountId",
	"x_BillingAccountName", "x_BillingExchangeRate", "x_BillingProfileId", "x_BillingProfileName",
	"x_CostCenter", "x_EffectiveCostInUsd", "x_EffectiveUnitPrice", "x_InvoiceSectionId",
	"x_InvoiceSectionName", "x_ListCostInUsd", "x_PricingUnitDescription", "x_PublisherCategory",
	"x_ResourceGroupName", "x_ResourceType", "x_SkuMeterCategory", "x_SkuMeterId", "x_SkuMeterSubcategory",
	"x_SkuOfferId", "x_SkuOrderId", "x_SkuOrderName", "x_SkuPartNumber", "x_SkuServiceFamily", "x_SkuTerm",
	"x_SourceMetric",
}

var colIndex = func() map[string]int {
	m := make(map[string]int, len(Columns))
	for i, c := range Columns {
		m[c] = i
	}
	return m
}()

// value kinds of a cell.
const (
	vNull byte = iota
	vString
	vNumber // exact decimal text
	vRaw    // JSON text (an object)
)

type cell struct {
	kind byte
	s    string
}

// Row is one FOCUS row: a cell per entry of Columns.
type Row struct {
	cells []cell
	// Currency, Billed and Effective are the row's BillingCurrency, BilledCost and
	// EffectiveCost, for the manifest's totals.
	Currency          string
	Billed, Effective string
	// Commitment is the commitment order the row belongs to ("" for none), Status its
	// CommitmentDiscountStatus, Purchase whether it is a commitment purchase or refund.
	Commitment string
	Status     string
	Purchase   bool
}

func (r *Row) set(name string, c cell) {
	i, ok := colIndex[name]
	if !ok {
		panic("focus: unknown column " + name)
	}
	r.cells[i] = c
}

func (r *Row) str(name, v string) {
	if v == "" {
		r.set(name, cell{})
		return
	}
	r.set(name, cell{kind: vString, s: v})
}

func (r *Row) num(name, v string) {
	if v == "" {
		r.set(name, cell{})
		return
	}
	r.set(name, cell{kind: vNumber, s: v})
}

// Get returns a cell's text and whether it is non-null (for tests and checks).
func (r *Row) Get(name string) (string, bool) {
	i, ok := colIndex[name]
	if !ok {
		return "", false
	}
	c := r.cells[i]
	return c.s, c.kind != vNull
}

// AppendJSON appends the row as one JSON object (no newline), columns in Columns order.
func (r *Row) AppendJSON(b []byte) []byte {
	b = append(b, '{')
	for i, name := range Columns {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, '"', ':')
		c := r.cells[i]
		switch c.kind {
		case vNull:
			b = append(b, "null"...)
		case vString:
			b, _ = jsontext.AppendQuote(b, c.s) // invalid UTF-8 becomes U+FFFD
		default:
			b = append(b, c.s...)
		}
	}
	return append(b, '}')
}

// record is a usageDetails record (legacy or modern kind) as the raw trees hold it.
type record struct {
	Kind       string          `json:"kind"`
	Tags       json.RawMessage `json:"tags"`
	Properties map[string]any  `json:"properties"`
}

// ErrShape is returned for a record that is not a legacy or modern usageDetails record.
var ErrShape = errors.New("not a legacy or modern usageDetails record")

func parseRecord(raw []byte) (*record, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var rec record
	if err := d.Decode(&rec); err != nil {
		return nil, fmt.Errorf("decoding record: %w", err)
	}
	if (rec.Kind != "legacy" && rec.Kind != "modern") || rec.Properties == nil {
		return nil, fmt.Errorf("record kind %q: %w", rec.Kind, ErrShape)
	}
	return &rec, nil
}

// text returns a property as text: strings as they are, numbers as their exact digits, booleans
// as true/false, anything else "".
func text(m map[string]any, k string) string {
	switch v := m[k].(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	}
	return ""
}

func (rec *record) modern() bool { return rec.Kind == "modern" }

func (rec *record) get(k string) string { return text(rec.Properties, k) }

// first returns the first non-empty property of keys.
func (rec *record) first(keys ...string) string {
	for _, k := range keys {
		if v := rec.get(k); v != "" {
			return v
		}
	}
	return ""
}

// meter returns a meterDetails member (legacy, with $expand) or the flat property (modern).
func (rec *record) meter(k string) string {
	if md, ok := rec.Properties["meterDetails"].(map[string]any); ok {
		if v := text(md, k); v != "" {
			return v
		}
	}
	return rec.get(k)
}

// norm lower-cases and removes spaces: PricingModel `On Demand` and `OnDemand` compare equal
// (§2.5 #4 of the reference: compare case- and space-insensitively).
func norm(s string) string { return strings.ToLower(strings.ReplaceAll(s, " ", "")) }

func isCommitmentModel(pm string) bool {
	n := norm(pm)
	return n == "reservation" || n == "savingsplan"
}

// Period bounds a partition's billing period, for rows whose billing-period dates are empty.
type Period struct{ Start, End time.Time } // End exclusive

// Convert turns one record of the from partition (FromActual or FromAmortized) into a FOCUS row.
// It returns ok false for a record the dataset does not take from that partition (§2.1: from
// actual only commitment purchases and refunds; from amortized everything else).
func Convert(raw []byte, from string, p Period) (row *Row, ok bool, err error) {
	rec, err := parseRecord(raw)
	if err != nil {
		return nil, false, err
	}
	c := classify(rec, from)
	if c.purchase != (from == FromActual) {
		return nil, false, nil
	}
	c.r = &Row{Purchase: c.purchase, cells: make([]cell, len(Columns))}
	for _, cp := range copied {
		if cp.meter {
			c.r.str(cp.col, rec.meter(cp.keys[0]))
		} else {
			c.r.str(cp.col, rec.first(cp.keys...))
		}
	}
	if err := c.costs(); err != nil {
		return nil, false, err
	}
	c.billingAccount()
	if err := c.periods(p); err != nil {
		return nil, false, err
	}
	c.charge()
	c.commitment()
	c.quantities()
	c.resource()
	c.sku()
	c.subAccount()
	return c.r, true, nil
}

// copied are the columns taken from the record as they are: the first non-empty property of
// keys, or with meter the meterDetails member of a legacy record (else the flat property).
var copied = []struct {
	col   string
	meter bool
	keys  []string
}{
	{col: "x_BillingAccountId", keys: []string{"billingAccountId"}},
	{col: "x_BillingAccountName", keys: []string{"billingAccountName"}},
	{col: "x_BillingProfileId", keys: []string{"billingProfileId"}},
	{col: "x_BillingProfileName", keys: []string{"billingProfileName"}},
	{col: "x_InvoiceSectionId", keys: []string{"invoiceSectionId"}},
	{col: "x_InvoiceSectionName", keys: []string{"invoiceSectionName", "invoiceSection"}},
	{col: "x_CostCenter", keys: []string{"costCenter"}},
	{col: "x_AccountName", keys: []string{"accountName"}},
	{col: "x_AccountOwnerId", keys: []string{"accountOwnerId"}},
	{col: "ChargeDescription", keys: []string{"product"}},
	{col: "CommitmentDiscountId", keys: []string{"benefitId", "reservationId"}},
	{col: "CommitmentDiscountName", keys: []string{"benefitName", "reservationName"}},
	{col: "x_PricingUnitDescription", meter: true, keys: []string{"unitOfMeasure"}},
	{col: "ResourceId", keys: []string{"resourceId", "instanceName"}},
	{col: "x_ResourceGroupName", keys: []string{"resourceGroup", "resourceGroupName"}},
	{col: "SkuId", keys: []string{"productIdentifier"}},
	{col: "SkuMeter", meter: true, keys: []string{"meterName"}},
	{col: "x_SkuMeterCategory", meter: true, keys: []string{"meterCategory"}},
	{col: "x_SkuMeterSubcategory", meter: true, keys: []string{"meterSubCategory"}},
	{col: "x_SkuMeterId", keys: []string{"meterId"}},
	{col: "x_SkuServiceFamily", meter: true, keys: []string{"serviceFamily"}},
	{col: "x_SkuOfferId", keys: []string{"offerId"}},
	{col: "x_SkuOrderId", keys: []string{"productOrderId"}},
	{col: "x_SkuOrderName", keys: []string{"productOrderName"}},
	{col: "x_SkuPartNumber", keys: []string{"partNumber"}},
}

// conv is one record being converted: the record, the row it fills, and what kind of charge the
// record is, decided once by classify.
type conv struct {
	rec       *record
	r         *Row
	from      string
	ct        string // charge type, normalised (norm)
	pm        string // pricing model as given
	benefitID string
	committed bool // a commitment's charge
	purchase  bool // a commitment purchase or refund
	unused    bool // an unused reservation or savings plan
	modern    bool
	rate      string // pricing to billing currency exchange rate ("1" for legacy records)
	armType   string // the resource's ARM type
}

func classify(rec *record, from string) *conv {
	c := &conv{rec: rec, from: from, pm: rec.get("pricingModel"), modern: rec.modern(), rate: "1"}
	c.benefitID = rec.first("benefitId", "reservationId")
	// Records of api-versions before 2021-10-01 have no pricingModel: a charge with a
	// reservation or benefit id is then taken as a commitment's.
	c.committed = isCommitmentModel(c.pm) || (strings.TrimSpace(c.pm) == "" && c.benefitID != "")
	c.ct = norm(rec.get("chargeType"))
	c.purchase = c.committed && (c.ct == "purchase" || c.ct == "refund")
	c.unused = c.ct == "unusedreservation" || c.ct == "unusedsavingsplan"
	if v := rec.get("exchangeRatePricingToBilling"); c.modern && v != "" {
		c.rate = v
	}
	c.armType = armType(rec.first("resourceId", "instanceName"))
	return c
}

// costs sets the billed and effective costs, and their USD figures for modern records.
func (c *conv) costs() error {
	rec, r := c.rec, c.r
	cost := rec.first("costInBillingCurrency", "cost")
	if !c.modern {
		cost = rec.first("cost", "costInBillingCurrency")
	}
	if cost == "" {
		cost = "0"
	}
	if _, err := decimal.Parse(cost); err != nil {
		return fmt.Errorf("cost %q: %w", cost, err)
	}
	billed, effective := cost, cost
	switch {
	case c.purchase:
		effective = "0"
	case c.unused, c.ct == "usage" && c.committed:
		billed = "0" // §2.5 #1: unused commitment rows are billed through the purchase
	}
	r.Billed, r.Effective = billed, effective
	r.num("BilledCost", billed)
	r.num("EffectiveCost", effective)
	r.str("x_SourceMetric", c.from)
	if !c.modern {
		return nil
	}
	r.num("x_BillingExchangeRate", c.rate)
	usd := rec.get("costInUSD")
	if c.from == FromActual {
		r.num("x_BilledCostInUsd", usd)
		r.num("x_EffectiveCostInUsd", "0")
	} else {
		r.num("x_EffectiveCostInUsd", usd)
		if billed == "0" {
			r.num("x_BilledCostInUsd", "0")
		} else {
			r.num("x_BilledCostInUsd", usd)
		}
	}
	r.num("x_ListCostInUsd", rec.get("paygCostInUSD"))
	return nil
}

// billingAccount sets the billing account: the EA billing account, or the MCA billing profile.
func (c *conv) billingAccount() {
	rec, r := c.rec, c.r
	ba, bp := rec.get("billingAccountId"), rec.get("billingProfileId")
	cur := rec.first("billingCurrencyCode", "billingCurrency")
	r.Currency = cur
	r.str("BillingCurrency", cur)
	if c.modern {
		r.str("BillingAccountId", "/providers/Microsoft.Billing/billingAccounts/"+ba+"/billingProfiles/"+bp)
		r.str("BillingAccountName", rec.get("billingProfileName"))
		r.str("BillingAccountType", "Billing Profile")
		r.str("PricingCurrency", rec.first("pricingCurrencyCode", "pricingCurrency"))
		r.str("InvoiceId", rec.get("invoiceId"))
	} else {
		r.str("BillingAccountId", "/providers/Microsoft.Billing/billingAccounts/"+ba)
		r.str("BillingAccountName", rec.get("billingAccountName"))
		r.str("BillingAccountType", "Billing Account")
		r.str("PricingCurrency", cur)
	}
}

// periods sets the charge period (the usage day) and the billing period (the record's, else p).
func (c *conv) periods(p Period) error {
	rec, r := c.rec, c.r
	day, err := parseDay(rec.get("date"))
	if err != nil {
		return fmt.Errorf("date: %w", err)
	}
	r.str("ChargePeriodStart", stamp(day))
	r.str("ChargePeriodEnd", stamp(day.AddDate(0, 0, 1)))
	bps, bpe := p.Start, p.End
	if d, err := parseDay(rec.get("billingPeriodStartDate")); err == nil {
		bps = d
	}
	if d, err := parseDay(rec.get("billingPeriodEndDate")); err == nil {
		bpe = d.AddDate(0, 0, 1) // inclusive in cost details, exclusive in FOCUS
	}
	r.str("BillingPeriodStart", stamp(bps))
	r.str("BillingPeriodEnd", stamp(bpe))
	return nil
}

// charge sets the charge's category, class, frequency and pricing category.
func (c *conv) charge() {
	ct, r := c.ct, c.r
	r.str("ChargeCategory", chargeCategory(ct))
	if ct == "refund" {
		r.str("ChargeClass", "Correction")
	}
	r.str("ChargeFrequency", chargeFrequency(c.rec.get("frequency"), ct))
	pc := pricingCategory(c.pm)
	if cat := chargeCategory(ct); pc == "" && ct != "refund" && (cat == "Usage" || cat == "Purchase") {
		// No pricingModel (api-versions before 2021-10-01): committed when a commitment's,
		// else a list or negotiated price.
		pc = "Standard"
		if c.committed {
			pc = "Committed"
		}
	}
	r.str("PricingCategory", pc)
}

// commitment sets the commitment discount's category, type and status, and the amortization
// class.
func (c *conv) commitment() {
	r, pm := c.r, norm(c.pm)
	lb := strings.ToLower(c.benefitID)
	switch {
	case strings.Contains(lb, "/microsoft.capacity/"):
		r.str("CommitmentDiscountCategory", "Usage")
		r.str("CommitmentDiscountType", "Reservation")
	case strings.Contains(lb, "/microsoft.billingbenefits/"):
		r.str("CommitmentDiscountCategory", "Spend")
		r.str("CommitmentDiscountType", "Savings Plan")
	case c.benefitID != "" && (pm == "reservation" || pm == ""):
		r.str("CommitmentDiscountCategory", "Usage")
		r.str("CommitmentDiscountType", "Reservation")
	case c.benefitID != "" && pm == "savingsplan":
		r.str("CommitmentDiscountCategory", "Spend")
		r.str("CommitmentDiscountType", "Savings Plan")
	}
	switch {
	case c.unused:
		r.Status = "Unused"
	case c.ct == "usage" && c.committed && c.benefitID != "":
		r.Status = "Used"
	}
	r.str("CommitmentDiscountStatus", r.Status)
	r.Commitment = CommitmentOrder(c.benefitID)
	switch {
	case c.purchase:
		r.str("x_AmortizationClass", "Principal")
	case r.Status == "Used":
		r.str("x_AmortizationClass", "Amortized Charge")
	}
}

// quantities sets the quantities, unit prices and the costs at those prices. §2.5 #2: Quantity is
// already in UnitOfMeasure blocks, so PricingQuantity is Quantity and the unit is kept verbatim
// in x_PricingUnitDescription.
func (c *conv) quantities() {
	rec, r := c.rec, c.r
	qty := rec.get("quantity")
	unit := rec.meter("unitOfMeasure")
	r.num("PricingQuantity", qty)
	r.str("PricingUnit", pricingUnit(unit))
	if c.ct == "usage" {
		r.num("ConsumedQuantity", qty)
		r.str("ConsumedUnit", pricingUnit(unit))
	}
	cup := mulText(rec.get("unitPrice"), c.rate)
	r.num("ContractedUnitPrice", cup)
	r.num("ContractedCost", orZero(mulText(cup, qty)))
	lup := mulText(rec.get("payGPrice"), c.rate)
	r.num("ListUnitPrice", lup)
	lc := rec.get("paygCostInBillingCurrency")
	if lc == "" {
		lc = mulText(lup, qty)
	}
	r.num("ListCost", orZero(lc))
	if c.from == FromAmortized {
		r.num("x_EffectiveUnitPrice", mulText(rec.get("effectivePrice"), c.rate))
	}
}

// resource sets the provider, publisher, resource, region and service.
func (c *conv) resource() {
	rec, r := c.rec, c.r
	r.str("ProviderName", "Microsoft")
	r.str("InvoiceIssuerName", orDefault(rec.get("partnerName"), "Microsoft"))
	marketplace := strings.EqualFold(rec.get("publisherType"), "Marketplace")
	r.str("PublisherName", orDefault(rec.get("publisherName"), "Microsoft"))
	if marketplace {
		r.str("x_PublisherCategory", "Vendor")
	} else {
		r.str("x_PublisherCategory", "Cloud Provider")
	}
	resID := rec.first("resourceId", "instanceName")
	name := rec.get("resourceName")
	if name == "" && resID != "" {
		name = resID[strings.LastIndexByte(resID, '/')+1:]
	}
	r.str("ResourceName", name)
	r.str("ResourceType", c.armType)
	r.str("x_ResourceType", c.armType)
	id, display := region(rec.first("resourceLocation", "resourceLocationNormalized"))
	r.str("RegionId", id)
	r.str("RegionName", display)
	svcName, svcCat := service(c.armType, rec.get("consumedService"), rec.meter("meterCategory"),
		rec.meter("serviceFamily"), rec.get("publisherName"), marketplace, c.ct)
	r.str("ServiceName", svcName)
	r.str("ServiceCategory", svcCat)
}

// sku sets the term, the price details (AdditionalInfo) and the capacity reservation.
func (c *conv) sku() {
	rec, r := c.rec, c.r
	if term := rec.get("term"); term != "" {
		if n, err := strconv.Atoi(term); err == nil {
			r.num("x_SkuTerm", strconv.Itoa(n))
		}
	}
	info := additionalInfo(rec.Properties["additionalInfo"])
	if len(info) == 0 {
		return
	}
	r.set("SkuPriceDetails", cell{kind: vRaw, s: prefixed(info)})
	if crID, ok := info["VMCapacityReservationId"].(string); ok && crID != "" {
		r.str("CapacityReservationId", crID)
		if strings.EqualFold(c.armType, "microsoft.compute/capacityreservationgroups/capacityreservations") {
			r.str("CapacityReservationStatus", "Unused")
		} else {
			r.str("CapacityReservationStatus", "Used")
		}
	}
}

// subAccount sets the subscription and the tags.
func (c *conv) subAccount() {
	rec, r := c.rec, c.r
	if sub := rec.first("subscriptionId", "subscriptionGuid"); sub != "" {
		r.str("SubAccountId", "/subscriptions/"+sub)
		r.str("SubAccountName", rec.get("subscriptionName"))
		r.str("SubAccountType", "Subscription")
	}
	if t := bytes.TrimSpace(rec.Tags); len(t) > 0 && !bytes.Equal(t, []byte("null")) {
		var b bytes.Buffer
		if err := json.Compact(&b, t); err == nil {
			r.set("Tags", cell{kind: vRaw, s: b.String()})
		}
	}
}

// CommitmentOrder returns the lower-cased commitment order of a benefit id
// (`/providers/microsoft.capacity/reservationorders/{order}`,
// `/providers/microsoft.billingbenefits/savingsplanorders/{order}`): purchases carry the order,
// usage the instance below it. Other ids are returned lower-cased; "" stays "".
func CommitmentOrder(benefitID string) string {
	l := strings.ToLower(strings.TrimSuffix(benefitID, "/"))
	for _, k := range []string{"/reservationorders/", "/savingsplanorders/"} {
		if i := strings.Index(l, k); i >= 0 {
			rest := l[i+len(k):]
			if j := strings.IndexByte(rest, '/'); j >= 0 {
				rest = rest[:j]
			}
			return l[:i+len(k)] + rest
		}
	}
	return l
}

func chargeCategory(ct string) string {
	switch ct {
	case "usage", "unusedreservation", "unusedsavingsplan":
		return "Usage"
	case "purchase", "refund":
		return "Purchase"
	case "credit":
		return "Credit"
	case "tax":
		return "Tax"
	}
	return "Adjustment"
}

// chargeFrequency maps Frequency; an unknown value falls back on the charge (§2.5 #3: never
// `Other`, which FOCUS 1.2 does not allow): usage is Usage-Based, anything else One-Time.
func chargeFrequency(f, ct string) string {
	switch norm(f) {
	case "onetime":
		return "One-Time"
	case "recurring":
		return "Recurring"
	case "usagebased":
		return "Usage-Based"
	}
	if chargeCategory(ct) == "Usage" {
		return "Usage-Based"
	}
	return "One-Time"
}

func pricingCategory(pm string) string {
	switch norm(pm) {
	case "":
		return ""
	case "ondemand":
		return "Standard"
	case "spot":
		return "Dynamic"
	case "reservation", "savingsplan":
		return "Committed"
	}
	return "Other"
}

// units maps common UnitOfMeasure values to FOCUS UnitFormat units; anything else is kept.
var units = map[string]string{
	"1 hour": "Hours", "10 hours": "10 Hours", "100 hours": "100 Hours", "1 gb": "GB", "1 gb/month": "GB-Months",
	"1/month": "Units/Month", "1/day": "Units/Day", "10k": "10000 Units", "1m": "1000000 Units", "1": "Units",
	"1 tb/month": "TB-Months", "1/hour": "Units/Hour",
}

func pricingUnit(u string) string {
	if v, ok := units[strings.ToLower(strings.TrimSpace(u))]; ok {
		return v
	}
	return u
}

func orZero(s string) string { return orDefault(s, "0") }

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// mulText multiplies two decimal texts exactly; "" when either is missing or not a number.
func mulText(a, b string) string {
	if a == "" || b == "" {
		return ""
	}
	x, ok1 := new(big.Rat).SetString(a)
	y, ok2 := new(big.Rat).SetString(b)
	if !ok1 || !ok2 {
		return ""
	}
	return decimal.Format(x.Mul(x, y))
}

// parseDay reads a usage or billing-period date: ISO date-time (7 fractional digits in JSON),
// a plain date, or MM/DD/YYYY.
func parseDay(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, errors.New("empty date")
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", time.DateOnly, "01/02/2006"} {
		if t, err := time.Parse(layout, s); err == nil {
			y, m, d := t.UTC().Date()
			return time.Date(y, m, d, 0, 0, 0, 0, time.UTC), nil
		}
	}
	return time.Time{}, fmt.Errorf("unrecognised date %q", s)
}

// stamp formats a UTC day as FOCUS wants date/times: YYYY-MM-DDTHH:mm:ssZ.
func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

func armType(resID string) string {
	l := strings.ToLower(resID)
	i := strings.LastIndex(l, "/providers/")
	if i < 0 {
		return ""
	}
	segs := strings.Split(resID[i+len("/providers/"):], "/")
	if len(segs) < 3 {
		return ""
	}
	t := segs[0]
	for k := 1; k < len(segs); k += 2 {
		t += "/" + segs[k]
	}
	return t
}

func additionalInfo(v any) map[string]any {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case map[string]any:
		return x
	default:
		return nil
	}
	if strings.TrimSpace(s) == "" {
		return nil
	}
	var m map[string]any
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	if d.Decode(&m) != nil {
		return nil
	}
	return m
}

// prefixed is SkuPriceDetails: AdditionalInfo with every key prefixed x_ (Microsoft's rule),
// keys sorted.
func prefixed(info map[string]any) string {
	out := make(map[string]any, len(info))
	for k, v := range info {
		out["x_"+k] = v
	}
	b, _ := json.Marshal(out)
	return string(b)
}
