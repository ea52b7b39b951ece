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
			partNumber: "AAF-44619", productID: "DZH318Z0BQ4B00FV", price: dec{768, 4}, payG: dec{96, 3}, qtyMicros: 24_000000,
			additionalInfo: `{  "UsageType": "ComputeHR",  "ImageType": "Canonical",  "ServiceType": "Standard_D2s_v3",  "VMName": null,  "VMProperties": null,  "VCPUs": 2,  "CPUs": 0}`,
			serviceInfo2:   "Canonical"},
		{name: "Hot LRS Data Stored", category: "Storage", subCategory: "Tiered Block Blob", family: "Storage", unit: "1 GB/Month",
			service: "Microsoft.Storage", resType: "storageAccounts", prefix: "st", product: "Tiered Block Blob - Hot LRS Data Stored",
			partNumber: "AAD-87204", productID: "DZH318Z0BJS6000C", price: dec{166, 4}, payG: dec{208, 4}, qtyMicros: 18_250000},
		{name: "Standard IPv4 Static Public IP", category: "Virtual Network", subCategory: "IP Addresses", family: "Networking", unit: "1 Hour",
			service: "Microsoft.Network", resType: "publicIPAddresses", prefix: "pip", product: "IP Addresses - Standard IPv4 Static Public IP",
			partNumber: "AAH-18040", productID: "DZH318Z0BNVX002K", price: dec{4, 3}, payG: dec{5, 3}, qtyMicros: 24_000000},
		{name: "Standard Data Transfer Out", category: "Bandwidth", subCategory: "Rtn Preference: MGN", family: "Networking", unit: "1 GB",
			service: "Microsoft.Network", resType: "loadBalancers", prefix: "lb", product: "Rtn Preference: MGN - Standard Data Transfer Out",
			partNumber: "AAA-01987", productID: "DZH318Z0BNVX0030", price: dec{696, 4}, payG: dec{87, 3}, qtyMicros: 42_500000,
			additionalInfo: `{"DataTransferDirection":"DataTrOut"}`},
		{name: "vCore", category: "SQL Database", subCategory: "General Purpose - Compute Gen5", family: "Databases", unit: "1 Hour",
			service: "Microsoft.Sql", resType: "servers", prefix: "sql", product: "SQL Database Single/Elastic Pool General Purpose - Compute Gen5 - vCore",
			partNumber: "AAD-93744", productID: "DZH318Z0BQ4K0009", price: dec{2018, 4}, payG: dec{2522, 4}, qtyMicros: 48_000000},
		{name: "P1 v2 App", category: "Azure App Service", subCategory: "Premium v2 Plan", family: "Compute", unit: "1 Hour",
			service: "Microsoft.Web", resType: "serverfarms", prefix: "asp", product: "Azure App Service Premium v2 Plan - P1 v2 App",
			partNumber: "AAD-62530", productID: "DZH318Z0BQ4H0014", price: dec{16, 2}, payG: dec{2, 1}, qtyMicros: 24_000000},
		{name: "Pay-as-you-go Data Ingestion", category: "Log Analytics", subCategory: "", family: "Management and Governance", unit: "1 GB",
			service: "Microsoft.OperationalInsights", resType: "workspaces", prefix: "log", product: "Log Analytics - Pay-as-you-go Data Ingestion",
			partNumber: "AAH-54203", productID: "DZH318Z0BQ5P000F", price: dec{2208, 3}, payG: dec{276, 2}, qtyMicros: 3_750000},
		{name: "P10 LRS Disk", category: "Storage", subCategory: "Premium SSD Managed Disks", family: "Storage", unit: "1/Month",
			service: "Microsoft.Compute", resType: "disks", prefix: "disk", product: "Premium SSD Managed Disks - P10 LRS Disk",
			partNumber: "AAD-16902", productID: "DZH318Z0BP04000B", price: dec{15768, 3}, payG: dec{1971, 2}, qtyMicros: 32258},
		{name: "Operations", category: "Key Vault", subCategory: "", family: "Security", unit: "10K",
			service: "Microsoft.KeyVault", resType: "vaults", prefix: "kv", product: "Key Vault - Operations",
			partNumber: "AAA-95341", productID: "DZH318Z0BQPS000H", price: dec{24, 3}, payG: dec{3, 2}, qtyMicros: 2_400000},
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
	rkUsage    rowKind = iota // on-demand usage
	rkReserved                // usage covered by a reservation: cost 0 in actual, amortized price in amortized
	rkPurchase                // monthly reservation purchase (actual cost only), day 1
	rkUnused                  // unused reservation hours (amortized cost only)
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

// rowsOn returns how many rows a subscription has on a day for a metric.
func (w *world) rowsOn(s *subscription, day time.Time, metric Metric, perDay int) int {
	n := perDay
	if s.hasReservation {
		if metric == MetricAmortizedCost {
			if w.unusedDay(s, day) {
				n++
			}
		} else if day.Day() == 1 {
			n++
		}
	}
	return n
}

func (w *world) unusedDay(s *subscription, day time.Time) bool {
	return mix(w.seed^mix(uint64(s.index)<<32|uint64(day.Unix()/86400)^0xabcdef))%4 == 0
}

// monthRate is the pricing (USD) → billing currency rate of a month.
func monthRate(currency string, yyyymm int) dec {
	if currency != "EUR" {
		return dec{1, 0}
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
	case k >= perDay && metric == MetricAmortizedCost:
		r.kind = rkUnused
	case k >= perDay:
		r.kind = rkPurchase
	case k == 0 && s.hasReservation:
		r.kind = rkReserved
	}
	if r.kind != rkPurchase && r.kind != rkUnused {
		r.res = s.resources[k%len(s.resources)]
	} else {
		r.res = s.resources[0]
	}
	m := r.res.meter
	switch r.kind {
	case rkPurchase:
		r.quantity = dec{1, 0}
		r.unitPrice = s.reservation.monthly
		r.effectivePrice = s.reservation.monthly
		r.payGPrice = s.reservation.monthly
		r.pricingModel = "Reservation"
	case rkUnused:
		r.quantity = norm(dec{m: 1_000000 + g.next()%12_000000, s: 6})
		r.unitPrice = m.price
		r.effectivePrice = s.reservation.hourly
		r.payGPrice = m.payG
		r.pricingModel = "Reservation"
	default:
		q := m.qtyMicros
		if m.unit == "1 Hour" && g.intn(5) != 0 {
			// running all day
		} else {
			q = q / 4 * (1 + g.next()%8) / 2
			q += g.next() % 1000
		}
		r.quantity = norm(dec{m: q, s: 6})
		r.unitPrice = m.price
		r.effectivePrice = m.price
		r.payGPrice = m.payG
		if r.kind == rkReserved {
			r.pricingModel = "Reservation"
			if metric == MetricAmortizedCost {
				r.effectivePrice = s.reservation.hourly
			} else {
				r.effectivePrice = dec{}
			}
		} else if g.intn(25) == 0 {
			r.effectivePrice = dec{} // free tier / included quantity
		}
	}
	if !s.modern && s.currency == "EUR" {
		r.unitPrice = round(mul(r.unitPrice, eurFactor), 6)
		r.effectivePrice = round(mul(r.effectivePrice, eurFactor), 6)
		r.payGPrice = round(mul(r.payGPrice, eurFactor), 6)
	}
	r.cost = mul(r.quantity, r.effectivePrice)
	if s.modern {
		r.rate = monthRate(s.currency, r.month)
		r.costUSD = r.cost
		r.costBilling = mul(r.costUSD, r.rate)
		r.paygUSD = mul(r.quantity, r.payGPrice)
		r.paygBilling = mul(r.paygUSD, r.rate)
	}
}

func (r *row) chargeType() string {
	switch r.kind {
	case rkPurchase:
		return "Purchase"
	case rkUnused:
		return "UnusedReservation"
	}
	return "Usage"
}

func (r *row) frequency() string {
	if r.kind == rkPurchase {
		return "Recurring"
	}
	return "UsageBased"
}

// hasResource reports whether the row is attributed to a resource (purchases and unused
// reservation hours are not).
func (r *row) hasResource() bool { return r.kind == rkUsage || r.kind == rkReserved }

func (r *row) reserved() bool { return r.kind != rkUsage }

// billingCost is the ground-truth cost of the row: legacy `cost`, modern
// `costInBillingCurrency`, 2018-06-30 `pretaxCost` (all the same amount).
func (r *row) billingCost() dec {
	if r.sub.modern {
		return r.costBilling
	}
	return r.cost
}
