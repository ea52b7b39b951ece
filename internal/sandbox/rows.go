package sandbox

import (
	"fmt"
	"strings"
	"time"
)

// Deterministic, randomly addressable rows: row k of (subscription, day, metric) is a pure
// function of the seed and those coordinates, so a page is generated from its offset without
// generating anything before it.

// mix is the splitmix64 finaliser.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// rng is a splitmix64 stream.
type rng struct{ s uint64 }

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (r *rng) intn(n int) int { return int(r.next() % uint64(n)) }

type meter struct {
	id, name, category, subCategory, family, unit string
	service, resType, prefix, product, partNumber string
	productID                                     string
	price, payG                                   dec // EA / pricing-currency unit price, pay-as-you-go price (USD)
	qtyMicros                                     uint64
	additionalInfo                                string // raw JSON text or ""
	serviceInfo2                                  string
}

// meters is the catalogue. Names and categories follow the real price sheet.
var meters = func() []*meter {
	ms := []*meter{
		{name: "D2s v3", category: "Virtual Machines", subCategory: "Dsv3 Series", family: "Compute", unit: "1 Hour",
			service: "Microsoft.Compute", resType: "virtualMachines", prefix: "vm", product: "Virtual Machines Dsv3 Series - D2s v3",
			partNumber: "AAF-44619", productID: "DZH318Z0BQ4B00FV", price: dec{m: 768, s: 4}, payG: dec{m: 96, s: 3}, qtyMicros: 24_000000,
			additionalInfo: `{  "UsageType": "ComputeHR",  "ImageType": "Canonical",  "ServiceType": "Standard_D2s_v3",  "VMName": null,  "VMProperties": null,  "VCPUs": 2,  "CPUs": 0}`,
			serviceInfo2:   "Canonical"},
		{name: "Hot LRS Data Stored", category: "Storage", subCategory: "Tiered Block Blob", family: "Storage", unit: "1 GB/Month",
			service: "Microsoft.Storage", resType: "storageAccounts", prefix: "st", product: "Tiered Block Blob - Hot LRS Data Stored",
			partNumber: "AAD-87204", productID: "DZH318Z0BJS6000C", price: dec{m: 166, s: 4}, payG: dec{m: 208, s: 4}, qtyMicros: 18_250000},
		{name: "Standard IPv4 Static Public IP", category: "Virtual Network", subCategory: "IP Addresses", family: "Networking", unit: "1 Hour",
			service: "Microsoft.Network", resType: "publicIPAddresses", prefix: "pip", product: "IP Addresses - Standard IPv4 Static Public IP",
			partNumber: "AAH-18040", productID: "DZH318Z0BNVX002K", price: dec{m: 4, s: 3}, payG: dec{m: 5, s: 3}, qtyMicros: 24_000000},
		{name: "Standard Data Transfer Out", category: "Bandwidth", subCategory: "Rtn Preference: MGN", family: "Networking", unit: "1 GB",
			service: "Microsoft.Network", resType: "loadBalancers", prefix: "lb", product: "Rtn Preference: MGN - Standard Data Transfer Out",
			partNumber: "AAA-01987", productID: "DZH318Z0BNVX0030", price: dec{m: 696, s: 4}, payG: dec{m: 87, s: 3}, qtyMicros: 42_500000,
			additionalInfo: `{"DataTransferDirection":"DataTrOut"}`},
		{name: "vCore", category: "SQL Database", subCategory: "General Purpose - Compute Gen5", family: "Databases", unit: "1 Hour",
			service: "Microsoft.Sql", resType: "servers", prefix: "sql", product: "SQL Database Single/Elastic Pool General Purpose - Compute Gen5 - vCore",
			partNumber: "AAD-93744", productID: "DZH318Z0BQ4K0009", price: dec{m: 2018, s: 4}, payG: dec{m: 2522, s: 4}, qtyMicros: 48_000000},
		{name: "P1 v2 App", category: "Azure App Service", subCategory: "Premium v2 Plan", family: "Compute", unit: "1 Hour",
			service: "Microsoft.Web", resType: "serverfarms", prefix: "asp", product: "Azure App Service Premium v2 Plan - P1 v2 App",
			partNumber: "AAD-62530", productID: "DZH318Z0BQ4H0014", price: dec{m: 16, s: 2}, payG: dec{m: 2, s: 1}, qtyMicros: 24_000000},
		{name: "Pay-as-you-go Data Ingestion", category: "Log Analytics", subCategory: "", family: "Management and Governance", unit: "1 GB",
			service: "Microsoft.OperationalInsights", resType: "workspaces", prefix: "log", product: "Log Analytics - Pay-as-you-go Data Ingestion",
			partNumber: "AAH-54203", productID: "DZH318Z0BQ5P000F", price: dec{m: 2208, s: 3}, payG: dec{m: 276, s: 2}, qtyMicros: 3_750000},
		{name: "P10 LRS Disk", category: "Storage", subCategory: "Premium SSD Managed Disks", family: "Storage", unit: "1/Month",
			service: "Microsoft.Compute", resType: "disks", prefix: "disk", product: "Premium SSD Managed Disks - P10 LRS Disk",
			partNumber: "AAD-16902", productID: "DZH318Z0BP04000B", price: dec{m: 15768, s: 3}, payG: dec{m: 1971, s: 2}, qtyMicros: 32258},
		{name: "Operations", category: "Key Vault", subCategory: "", family: "Security", unit: "10K",
			service: "Microsoft.KeyVault", resType: "vaults", prefix: "kv", product: "Key Vault - Operations",
			partNumber: "AAA-95341", productID: "DZH318Z0BQPS000H", price: dec{m: 24, s: 3}, payG: dec{m: 3, s: 2}, qtyMicros: 2_400000},
	}
	for _, m := range ms {
		m.id = guidFrom("meter", m.product)
	}
	return ms
}()

// apps name resource groups and resources.
var apps = []string{"web", "data", "shared", "api", "ml", "ops"}

type resource struct {
	meter                *meter
	group, name          string
	id                   string // ARM resource id
	tags                 string // the JSON object text
	tagPairs             [][2]string
	env                  string
	product              string // product name with the region
	legacyLocation       string
	additionalInfoEscape string // additionalInfo as a JSON string literal body (escaped)
}

func (w *world) buildResources(s *subscription) {
	r := rng{s: mix(w.seed ^ mix(uint64(s.index)+0x5eed))}
	env := "prod"
	if strings.Contains(s.name, "-dev-") {
		env = "dev"
	}
	s.resources = make([]*resource, w.resources)
	for i := range s.resources {
		m := meters[0]
		if i > 0 {
			m = meters[r.intn(len(meters))]
		}
		app := apps[r.intn(len(apps))]
		if i == 0 {
			app = apps[0]
		}
		res := &resource{
			meter: m,
			group: fmt.Sprintf("rg-%s-%s", app, env),
			name:  fmt.Sprintf("%s-%s-%s-%03d", m.prefix, app, env, i),
			env:   env,
		}
		res.id = "/subscriptions/" + s.guid + "/resourceGroups/" + res.group + "/providers/" + m.service + "/" + m.resType + "/" + res.name
		res.tagPairs = [][2]string{{"env", env}, {"app", app}}
		if r.intn(3) == 0 {
			res.tagPairs = append(res.tagPairs, [2]string{"owner", "team-" + app})
		}
		var tb []byte
		tb = append(tb, '{')
		for j, kv := range res.tagPairs {
			if j > 0 {
				tb = append(tb, ',')
			}
			tb = appendJSONString(tb, kv[0])
			tb = append(tb, ':')
			tb = appendJSONString(tb, kv[1])
		}
		res.tags = string(append(tb, '}'))
		res.product = m.product + " - " + s.region.display
		res.legacyLocation = s.region.legacyName
		esc := appendJSONString(nil, m.additionalInfo)
		res.additionalInfoEscape = string(esc[1 : len(esc)-1])
		s.resources[i] = res
	}
}

// Metric selects the cost view of the rows.
type Metric string

// Metrics of the usageDetails API (the `metric` query parameter). MetricUsage returns the same
// rows as MetricActualCost.
const (
	MetricActualCost    Metric = "actualcost"
	MetricAmortizedCost Metric = "amortizedcost"
	MetricUsage         Metric = "usage"
)

type rowKind uint8

const (
	rkUsage       rowKind = iota // on-demand usage
	rkReserved                   // usage covered by the reservation: cost 0 in actual, amortized price in amortized
	rkPurchase                   // quarterly reservation payment (actual cost only), day 1
	rkUnused                     // unused reservation hours of a day (amortized cost only), no subscription
	rkRefund                     // refund of a duplicated reservation payment (actual cost only), day 2
	rkSPCovered                  // usage covered by the savings plan
	rkSPPurchase                 // quarterly savings-plan payment (actual cost only), day 1
	rkSPUnused                   // unused savings-plan commitment of a day (amortized cost only), no subscription
	rkMarketplace                // monthly Marketplace purchase (both metrics, not amortized), day 1
	rkRounding                   // month-end rounding adjustment (both metrics)
)

// row is one generated usage record, independent of the API shape.
type row struct {
	sub   *subscription
	res   *resource
	kind  rowKind
	day   time.Time
	ymd   [3]int
	month int // yyyymm
	hi    uint64
	lo    uint64 // name bits

	quantity, unitPrice, effectivePrice, payGPrice, cost dec // billing currency (legacy)
	// modern amounts
	costUSD, costBilling, paygUSD, paygBilling, rate dec
	pricingModel                                     string
}

// eurFactor converts the sandbox's USD price list to the EUR enrollment's price list.
var eurFactor = dec{m: 9213, s: 4}

// maxExtras bounds the extra rows of a subscription's day.
const maxExtras = 8

// extras lists the rows a commitment-holding subscription has on a day beyond the perDay usage
// rows, in order (row k = perDay + i is extras[i]). Only subscriptions with hasReservation have
// any.
func (w *world) extras(s *subscription, day time.Time, metric Metric, perDay int) (ks [maxExtras]rowKind, n int) {
	if !s.hasReservation {
		return
	}
	add := func(k rowKind) { ks[n] = k; n++ }
	amortized := metric == MetricAmortizedCost
	y, m, d := day.Date()
	// Commitments are paid quarterly, on the 1st of January, April, July and October, each
	// payment buying the quarter's hours; that day the reservation payment is also duplicated
	// by mistake and refunded on the 2nd.
	payday := termStart(m)
	if d == 1 {
		if !amortized && payday {
			add(rkPurchase)
			add(rkSPPurchase)
			add(rkPurchase)
		}
		add(rkMarketplace)
	}
	if d == 2 && payday && !amortized {
		add(rkRefund)
	}
	if amortized {
		if less(w.reservedHours(s, day), hoursPerDay) {
			add(rkUnused)
		}
		if less(w.spCovered(s, day, perDay), s.conv(s.savingsPlan.daily)) {
			add(rkSPUnused)
		}
	}
	if d == lastDay(y, int(m)) {
		add(rkRounding)
	}
	return
}

var hoursPerDay = dec{m: 24}

// termMonths is how many months one commitment payment covers.
const termMonths = 3

// termStart reports whether a commitment payment falls in month m.
func termStart(m time.Month) bool { return (int(m)-1)%termMonths == 0 }

// termDays is the number of days a payment made in month (y, m) covers.
func termDays(y int, m time.Month) dec {
	n := 0
	for i := 0; i < termMonths; i++ {
		t := time.Date(y, m+time.Month(i), 1, 0, 0, 0, 0, time.UTC)
		n += lastDay(t.Year(), int(t.Month()))
	}
	return dec{m: uint64(n)}
}

// conv converts a price-list (USD) amount to what a record carries: EA EUR rows are priced in
// EUR (rounded to 6 places); modern rows carry pricing-currency (USD) prices.
func (s *subscription) conv(d dec) dec {
	if !s.modern && s.currency == "EUR" {
		return round(mul(d, eurFactor), 6)
	}
	return d
}

// reservedHours is the quantity of the day's reservation-covered row (slot 0), at most 24.
func (w *world) reservedHours(s *subscription, day time.Time) dec {
	var r row
	w.genRow(&r, s, day, 0, MetricActualCost, 1)
	return r.quantity
}

// spCovered is the amortized cost, in the row's price currency (EA: billing currency, MCA:
// USD), of the day's savings-plan covered row (slot 1); 0 when there is no slot 1.
func (w *world) spCovered(s *subscription, day time.Time, perDay int) dec {
	if perDay < 2 {
		return dec{}
	}
	var r row
	w.genRow(&r, s, day, 1, MetricAmortizedCost, perDay)
	return r.cost
}

// rowsOn returns how many rows a subscription has on a day for a metric.
func (w *world) rowsOn(s *subscription, day time.Time, metric Metric, perDay int) int {
	_, n := w.extras(s, day, metric, perDay)
	return perDay + n
}

// monthRate is the pricing (USD) → billing currency rate of a month.
func monthRate(currency string, yyyymm int) dec {
	if currency != "EUR" {
		return dec{1, 0, false}
	}
	return dec{m: 8900 + mix(uint64(yyyymm))%600, s: 4}
}

// genRow fills r with row k of (s, day) for metric; k < rowsOn(...).
func (w *world) genRow(r *row, s *subscription, day time.Time, k int, metric Metric, perDay int) {
	dayNum := uint64(day.Unix() / 86400)
	*r = row{sub: s, day: day}
	y, mo, d := day.Date()
	r.ymd = [3]int{y, int(mo), d}
	r.month = y*100 + int(mo)
	g := rng{s: mix(w.seed ^ mix(uint64(s.index)<<40^dayNum<<20^uint64(k)))}
	r.hi, r.lo = g.next(), g.next()
	r.pricingModel = "On Demand"
	switch {
	case k >= perDay:
		ks, _ := w.extras(s, day, metric, perDay)
		r.kind = ks[k-perDay]
	case k == 0 && s.hasReservation:
		r.kind = rkReserved
	case k == 1 && s.hasReservation:
		r.kind = rkSPCovered
	}
	if r.hasResource() {
		r.res = s.resources[k%len(s.resources)]
	} else {
		r.res = s.resources[0]
	}
	if !w.priceCharge(r, s, day, perDay) {
		priceUsage(r, s, &g, metric == MetricAmortizedCost)
	}
	r.cost = mul(r.quantity, r.effectivePrice)
	if s.modern {
		r.rate = monthRate(s.currency, r.month)
		if r.reserved() || r.savingsPlanRow() {
			// Commitment charges keep the rate of the quarter's payment, so that amortized
			// Used + Unused equals the payment in the billing currency too.
			r.rate = monthRate(s.currency, y*100+int(mo)-(int(mo)-1)%termMonths)
		}
		r.costUSD = r.cost
		r.costBilling = mul(r.costUSD, r.rate)
		r.paygUSD = mul(r.quantity, r.payGPrice)
		r.paygBilling = mul(r.paygUSD, r.rate)
	}
}

// priceCharge sets the quantity and prices of a row that is not metered usage (a commitment's
// purchase, refund or unused part, a Marketplace charge, a rounding adjustment) and reports
// whether r is one.
func (w *world) priceCharge(r *row, s *subscription, day time.Time, perDay int) bool {
	days := termDays(day.Year(), day.Month())
	switch r.kind {
	case rkPurchase, rkRefund:
		// One quarter of the reservation's hours, priced in the row's currency.
		r.quantity = dec{m: 1}
		if r.kind == rkRefund {
			r.quantity = negate(r.quantity)
		}
		p := mul(mul(hoursPerDay, days), s.conv(s.reservation.hourly))
		r.unitPrice, r.effectivePrice, r.payGPrice = p, p, dec{}
		r.pricingModel = "Reservation"
	case rkUnused:
		r.quantity = sub(hoursPerDay, w.reservedHours(s, day))
		r.unitPrice = s.conv(r.res.meter.price)
		r.effectivePrice = s.conv(s.reservation.hourly)
		r.pricingModel = "Reservation"
	case rkSPPurchase:
		r.quantity = dec{m: 1}
		p := mul(days, s.conv(s.savingsPlan.daily))
		r.unitPrice, r.effectivePrice = p, p
		r.pricingModel = "SavingsPlan"
	case rkSPUnused:
		r.quantity = dec{m: 1}
		p := sub(s.conv(s.savingsPlan.daily), w.spCovered(s, day, perDay))
		r.unitPrice, r.effectivePrice = p, p
		r.pricingModel = "SavingsPlan"
	case rkMarketplace:
		r.quantity = dec{m: 1}
		p := s.conv(dec{m: 495, s: 1}) // 49.5 a month
		r.unitPrice, r.effectivePrice = p, p
	case rkRounding:
		r.quantity = dec{m: 1}
		// The same amount in both metrics (the row's k differs between them).
		v := mix(w.seed ^ mix(uint64(s.index)<<32^uint64(r.month)^0x70d))
		r.effectivePrice = dec{m: 1 + v%40, s: 4, neg: v&64 != 0}
		r.pricingModel = ""
	default:
		return false
	}
	return true
}

// priceUsage sets the quantity and prices of a metered usage row (g continues the row's random
// stream): on demand, or covered by the reservation or the savings plan, at a price only in the
// amortized metric.
func priceUsage(r *row, s *subscription, g *rng, amortized bool) {
	m := r.res.meter
	q := m.qtyMicros
	if m.unit == "1 Hour" && g.intn(5) != 0 {
		// running all day
	} else {
		q = q / 4 * (1 + g.next()%8) / 2
		q += g.next() % 1000
	}
	r.quantity = norm(dec{m: q, s: 6})
	r.unitPrice = s.conv(m.price)
	r.effectivePrice = s.conv(m.price)
	r.payGPrice = s.conv(m.payG)
	switch r.kind {
	case rkReserved:
		// A reservation covers at most the day's 24 hours; hours are metered to 2 places.
		r.quantity = round(r.quantity, 2)
		if less(hoursPerDay, r.quantity) {
			r.quantity = hoursPerDay
		}
		r.pricingModel = "Reservation"
		r.effectivePrice = dec{}
		if amortized {
			r.effectivePrice = s.conv(s.reservation.hourly)
		}
	case rkSPCovered:
		r.quantity = round(r.quantity, 2)
		r.pricingModel = "SavingsPlan"
		r.effectivePrice = dec{}
		if amortized {
			r.effectivePrice = s.conv(spPrice(m.price))
		}
	default:
		if g.intn(25) == 0 {
			r.effectivePrice = dec{} // free tier / included quantity
		}
	}
}

// spPrice is the savings-plan rate of a meter: 20 % off its price.
func spPrice(p dec) dec { return mul(p, dec{m: 8, s: 1}) }

func (r *row) chargeType() string {
	switch r.kind {
	case rkPurchase, rkSPPurchase, rkMarketplace:
		return "Purchase"
	case rkRefund:
		return "Refund"
	case rkUnused:
		return "UnusedReservation"
	case rkSPUnused:
		return "UnusedSavingsPlan"
	case rkRounding:
		return "RoundingAdjustment"
	}
	return "Usage"
}

func (r *row) frequency() string {
	switch r.kind {
	case rkPurchase, rkSPPurchase, rkMarketplace:
		return "Recurring"
	case rkRefund, rkRounding:
		return "OneTime"
	}
	return "UsageBased"
}

// hasResource reports whether the row is attributed to a resource (purchases, unused
// commitments and adjustments are not).
func (r *row) hasResource() bool {
	return r.kind == rkUsage || r.kind == rkReserved || r.kind == rkSPCovered
}

// hasMeter reports whether the row has a meter (Marketplace and rounding rows have none).
func (r *row) hasMeter() bool { return r.kind != rkMarketplace && r.kind != rkRounding }

// hasSubscription reports whether the row is attributed to a subscription (unused commitment
// rows are not).
func (r *row) hasSubscription() bool { return r.kind != rkUnused && r.kind != rkSPUnused }

// reserved reports whether the row belongs to the reservation.
func (r *row) reserved() bool {
	return r.kind == rkReserved || r.kind == rkPurchase || r.kind == rkUnused || r.kind == rkRefund
}

// savingsPlanRow reports whether the row belongs to the savings plan.
func (r *row) savingsPlanRow() bool {
	return r.kind == rkSPCovered || r.kind == rkSPPurchase || r.kind == rkSPUnused
}

// purchaseLike reports whether the row is a commitment purchase or refund.
func (r *row) purchaseLike() bool {
	return r.kind == rkPurchase || r.kind == rkRefund || r.kind == rkSPPurchase
}

// billingCost is the ground-truth cost of the row: legacy `cost`, modern
// `costInBillingCurrency`, 2018-06-30 `pretaxCost` (all the same amount).
func (r *row) billingCost() dec {
	if r.sub.modern {
		return r.costBilling
	}
	return r.cost
}
