package sandbox

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/scope"
)

// The synthetic world. Its structure and ids are fixed, so demo configurations and tests can
// name scopes; the seed drives the data (quantities, prices, row names).
//
//   - EA enrollment 8608480 (billing account, USD): departments 301001 Engineering, 301002
//     Marketing, 301003 Finance and Operations; each has 2 enrollment accounts (4210001..4210006)
//     with 2 subscriptions each (12 subscriptions).
//   - EA enrollment 7712035 (EUR): department 302001 with enrollment accounts 4220001 and 4220002,
//     2 subscriptions each. An EA enrollment bills in one currency, so the second currency gets
//     its own enrollment.
//   - Management group mg-contoso-prod: the even-numbered subscriptions of enrollment 8608480.
//   - MCA billing account 1234:56789_2019-05-31: billing profiles AB12-CD34-BG7-TGB (USD) and
//     EF56-GH78-BG7-TGB (EUR), each with 2 invoice sections of 2 subscriptions; the second section
//     of each profile holds the subscriptions of a partner customer
//     (9b3c1d2e-4f5a-4b6c-8d7e-0f1a2b3c4d5e, 2e4f6a8b-0c1d-4e3f-9a5b-7c9d1e3f5a7b).
//   - Two pay-as-you-go subscriptions (offer MS-AZR-0003P, Web Direct), last in world order,
//     outside every billing scope: their billing periods start on the sign-up day (PAYGAnchorDays)
//     and are named like 202402-1 (the month after the period's first day). The Billing Periods
//     API lists them; a billing-period usageDetails request on api-version 2019-10-01 or later
//     is refused, as on the real service.
//
// EA subscriptions produce kind legacy records (offer MS-AZR-0017P), MCA ones kind modern
// (MS-AZR-0017G). Every third subscription holds commitments and the other charges FOCUS needs
// (rows.go, extras): a D2s v3 reservation covering its first resource's usage and a savings plan
// covering its second (cost 0 in actual cost, the amortized rate in amortized cost), paid
// quarterly (Purchase rows on the 1st of January, April, July and October in actual cost only;
// that day the reservation payment is duplicated and refunded on the 2nd), UnusedReservation /
// UnusedSavingsPlan rows without a subscription in amortized cost for the hours and spend not
// used, a monthly Marketplace purchase and a month-end RoundingAdjustment (in both metrics).
// Each payment buys exactly its quarter's commitment, so per commitment the amortized Used +
// Unused cost of a calendar quarter equals its purchases (Azure bills upfront or monthly; the
// quarterly payment makes the term invariant testable over three periods while actual and
// amortized totals still differ month by month). Server.Scopes lists every scope path.

// PAYGAnchorDays are the sign-up days of the pay-as-you-go subscriptions, in world order.
var PAYGAnchorDays = []int{5, 24}

// Fixed ids of the world.
const (
	EABillingAccount    = "8608480"               // EA enrollment billing in USD
	PAYGBillingAccount  = "56780001"              // billing account id on the pay-as-you-go records
	OfferWebDirect      = "MS-AZR-0003P"          // pay-as-you-go (Web Direct) offer
	EABillingAccountEUR = "7712035"               // second EA enrollment, billing in EUR
	ManagementGroupID   = "mg-contoso-prod"       // management group over part of EABillingAccount
	MCABillingAccount   = "1234:56789_2019-05-31" // MCA billing account
)

type eaAccount struct {
	id, name, currency string
	depts              []*department
}

type department struct {
	id, name string
	ea       *eaAccount
	accounts []*enrollmentAccount
}

type enrollmentAccount struct {
	id, name, owner, costCenter string
	dept                        *department
}

type mcaAccount struct {
	id, name  string
	profiles  []*billingProfile
	customers []*customer
}

type billingProfile struct {
	id, name, currency string
	index              int
	mca                *mcaAccount
	sections           []*invoiceSection
}

type invoiceSection struct {
	id, name string
	path     string // the invoiceSectionId of modern records
	profile  *billingProfile
}

type customer struct {
	id, name, tenant string
	partnerTenant    string
	mca              *mcaAccount
}

type region struct {
	name       string // resourceLocation as ARM writes it ("eastus")
	display    string // resourceLocationNormalized / meterRegion ("US East")
	legacyName string // legacy resourceLocation ("USEast")
}

var regions = []region{
	{"eastus", "US East", "USEast"},
	{"westeurope", "EU West", "EUWest"},
	{"westus2", "US West 2", "USWest2"},
	{"northeurope", "EU North", "EUNorth"},
}

type subscription struct {
	index  int
	guid   string
	name   string
	modern bool
	offer  string
	// anchor is the sign-up day of a pay-as-you-go subscription, whose billing periods run from
	// that day to the day before it next month; 0: calendar months.
	anchor int
	region *region
	// currency is the billing currency of the subscription's rows.
	currency string
	// hasReservation: slot 0 of every day is a reservation-covered VM, slot 1 savings-plan
	// covered usage, and the subscription has the extra charges of rows.go (extras).
	hasReservation bool
	reservation    reservation
	savingsPlan    savingsPlan

	ea      *eaAccount
	dept    *department
	account *enrollmentAccount

	mca      *mcaAccount
	profile  *billingProfile
	section  *invoiceSection
	customer *customer

	resources []*resource // by slot modulo len
}

type reservation struct {
	id, name, orderID, orderName string
	hourly                       dec // amortized hourly price (price-list currency)
}

// benefitID is the reservation's ARM id, as usage and unused rows carry it in benefitId.
func (rv *reservation) benefitID() string {
	return "/providers/Microsoft.Capacity/reservationOrders/" + rv.orderID + "/reservations/" + rv.id
}

// orderBenefitID is what purchase and refund rows carry in benefitId (the order, empty tail).
func (rv *reservation) orderBenefitID() string {
	return "/providers/Microsoft.Capacity/reservationOrders/" + rv.orderID + "/reservations/"
}

// savingsPlan is a compute savings plan with an hourly commitment.
type savingsPlan struct {
	id, name, orderID, orderName string
	daily                        dec // commitment per day (price-list currency)
}

func (sp *savingsPlan) benefitID() string {
	return "/providers/Microsoft.BillingBenefits/savingsPlanOrders/" + sp.orderID + "/savingsPlans/" + sp.id
}

func (sp *savingsPlan) orderBenefitID() string {
	return "/providers/Microsoft.BillingBenefits/savingsPlanOrders/" + sp.orderID
}

type world struct {
	seed  uint64
	ea    []*eaAccount
	mca   *mcaAccount
	mgSub map[string]bool // guid (lower) → in the management group
	subs  []*subscription
	// lookups by lowercase id
	eaByID    map[string]*eaAccount
	deptByID  map[string]*department
	acctByID  map[string]*enrollmentAccount
	subByID   map[string]*subscription
	profByID  map[string]*billingProfile
	sectByID  map[string]*invoiceSection
	custByID  map[string]*customer
	resources int // resources per subscription
}

// errNotFound marks a scope id that the world does not have.
var errNotFound = errors.New("not found")

// maxResourcesPerSub bounds the per-subscription resource table; slots beyond it reuse resources
// (one resource can produce several rows a day, as in the real data).
const maxResourcesPerSub = 256

func guidFrom(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return formatGUID(binary.BigEndian.Uint64(h[0:8]), binary.BigEndian.Uint64(h[8:16]))
}

// formatGUID formats 128 bits as a version-4 style GUID.
func formatGUID(hi, lo uint64) string {
	var b [36]byte
	appendGUID(b[:0], hi, lo)
	return string(b[:])
}

const hexDigits = "0123456789abcdef"

func appendGUID(dst []byte, hi, lo uint64) []byte {
	hi = (hi &^ (0xf << 12)) | (0x4 << 12) // version 4
	lo = (lo &^ (0x3 << 62)) | (0x2 << 62) // variant 10
	var raw [16]byte
	binary.BigEndian.PutUint64(raw[0:8], hi)
	binary.BigEndian.PutUint64(raw[8:16], lo)
	for i, c := range raw {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return dst
}

func newWorld(seed int64, recordsPerDay int) *world {
	w := &world{
		seed:     uint64(seed),
		mgSub:    map[string]bool{},
		eaByID:   map[string]*eaAccount{},
		deptByID: map[string]*department{},
		acctByID: map[string]*enrollmentAccount{},
		subByID:  map[string]*subscription{},
		profByID: map[string]*billingProfile{},
		sectByID: map[string]*invoiceSection{},
		custByID: map[string]*customer{},
	}
	w.resources = min(recordsPerDay, maxResourcesPerSub)
	if w.resources < 1 {
		w.resources = 1
	}
	w.addEnterprise()
	w.addMCA()
	w.addPAYG()
	for _, s := range w.subs {
		w.buildResources(s)
	}
	return w
}

// addEnterprise adds the two EA enrollments, their departments, enrollment accounts and
// subscriptions; every other subscription of the USD enrollment is in a management group.
func (w *world) addEnterprise() {
	type deptSpec struct {
		id, name string
		accounts [][2]string // id, name
	}
	type eaSpec struct {
		id, name, currency string
		depts              []deptSpec
	}
	specs := []eaSpec{
		{EABillingAccount, "Contoso Ltd", "USD", []deptSpec{
			{"301001", "Engineering", [][2]string{{"4210001", "Platform Engineering"}, {"4210002", "Product Engineering"}}},
			{"301002", "Marketing", [][2]string{{"4210003", "Digital Marketing"}, {"4210004", "Brand"}}},
			{"301003", "Finance and Operations", [][2]string{{"4210005", "Finance IT"}, {"4210006", "Operations"}}},
		}},
		{EABillingAccountEUR, "Contoso GmbH", "EUR", []deptSpec{
			{"302001", "Europe Operations", [][2]string{{"4220001", "Berlin Data"}, {"4220002", "Munich Apps"}}},
		}},
	}
	for _, es := range specs {
		ea := &eaAccount{id: es.id, name: es.name, currency: es.currency}
		w.ea = append(w.ea, ea)
		w.eaByID[strings.ToLower(ea.id)] = ea
		for _, ds := range es.depts {
			d := &department{id: ds.id, name: ds.name, ea: ea}
			ea.depts = append(ea.depts, d)
			w.deptByID[d.id] = d
			for ai, as := range ds.accounts {
				a := &enrollmentAccount{
					id: as[0], name: as[1], dept: d,
					owner:      strings.ToLower(strings.ReplaceAll(as[1], " ", ".")) + "@contoso.example",
					costCenter: fmt.Sprintf("CC-%s-%d", ds.id[3:], ai+1),
				}
				d.accounts = append(d.accounts, a)
				w.acctByID[a.id] = a
				for si := 0; si < 2; si++ {
					s := &subscription{
						name:     fmt.Sprintf("%s-%s-%02d", strings.ToLower(strings.Fields(as[1])[0]), []string{"prod", "dev"}[si], len(w.subs)+1),
						offer:    "MS-AZR-0017P",
						currency: ea.currency,
						ea:       ea, dept: d, account: a,
					}
					w.addSub(s)
				}
			}
		}
	}
	for _, s := range w.subs {
		if s.ea.id == EABillingAccount && s.index%2 == 0 {
			w.mgSub[s.guid] = true
		}
	}
}

// addMCA adds the MCA billing account: two customers, two billing profiles with two invoice
// sections each, and two subscriptions per section (those of the second section a customer's).
func (w *world) addMCA() {
	m := &mcaAccount{id: MCABillingAccount, name: "Fabrikam Inc"}
	w.mca = m
	custs := []*customer{
		{id: "9b3c1d2e-4f5a-4b6c-8d7e-0f1a2b3c4d5e", name: "Northwind Traders", mca: m},
		{id: "2e4f6a8b-0c1d-4e3f-9a5b-7c9d1e3f5a7b", name: "Tailspin Toys", mca: m},
	}
	for _, c := range custs {
		c.tenant = guidFrom("tenant", c.id)
		c.partnerTenant = guidFrom("tenant", m.id)
		m.customers = append(m.customers, c)
		w.custByID[c.id] = c
	}
	profSpecs := []struct {
		id, name, currency string
		sections           [2][2]string
	}{
		{"AB12-CD34-BG7-TGB", "Fabrikam US", "USD", [2][2]string{{"IJ90-KL12-PJA-TGB", "US Research"}, {"MN34-OP56-PJA-TGB", "US Partner Customers"}}},
		{"EF56-GH78-BG7-TGB", "Fabrikam EU", "EUR", [2][2]string{{"QR78-ST90-PJA-TGB", "EU Services"}, {"UV12-WX34-PJA-TGB", "EU Partner Customers"}}},
	}
	for pi, ps := range profSpecs {
		p := &billingProfile{id: ps.id, name: ps.name, currency: ps.currency, index: pi, mca: m}
		m.profiles = append(m.profiles, p)
		w.profByID[strings.ToLower(p.id)] = p
		for si, ss := range ps.sections {
			sec := &invoiceSection{id: ss[0], name: ss[1], profile: p}
			sec.path = "/providers/Microsoft.Billing/billingAccounts/" + m.id + "/billingProfiles/" + p.id + "/invoiceSections/" + sec.id
			p.sections = append(p.sections, sec)
			w.sectByID[strings.ToLower(sec.id)] = sec
			for k := 0; k < 2; k++ {
				s := &subscription{
					name:     fmt.Sprintf("fabrikam-%s-%02d", strings.ToLower(strings.Fields(ss[1])[1]), len(w.subs)+1),
					modern:   true,
					offer:    "MS-AZR-0017G",
					currency: p.currency,
					mca:      m, profile: p, section: sec,
				}
				if si == 1 {
					s.customer = custs[pi]
				}
				w.addSub(s)
			}
		}
	}
}

// addPAYG adds the pay-as-you-go (Web Direct) subscriptions: no enrollment, kind legacy records,
// billing periods anchored on the sign-up day (the 5th to the 4th, the 24th to the 23rd).
func (w *world) addPAYG() {
	payg := &eaAccount{id: PAYGBillingAccount, name: "Fourth Coffee", currency: "USD"}
	pd := &department{ea: payg}
	pa := &enrollmentAccount{name: "Fourth Coffee", owner: "billing@fourthcoffee.example", dept: pd}
	pd.accounts = []*enrollmentAccount{pa}
	for _, anchor := range PAYGAnchorDays {
		s := &subscription{
			name:  fmt.Sprintf("fourthcoffee-payg-%02d", len(w.subs)+1),
			offer: OfferWebDirect, currency: "USD", ea: payg, dept: pd, account: pa, anchor: anchor,
		}
		w.addSub(s)
		s.hasReservation = false
	}
}

// periodOf returns the billing period holding day for s: its first and last day and its name
// (YYYYMM for a calendar month; for an anchored period the month after its first day, with the
// suffix "-1", as in the Billing Periods API's 201702-1).
func (s *subscription) periodOf(day time.Time) (first, last time.Time, name string) {
	y, m, d := day.Date()
	if s.anchor == 0 {
		first = time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
		return first, first.AddDate(0, 1, -1), first.Format("200601")
	}
	first = time.Date(y, m, s.anchor, 0, 0, 0, 0, time.UTC)
	if d < s.anchor {
		first = first.AddDate(0, -1, 0)
	}
	return first, first.AddDate(0, 1, -1), first.AddDate(0, 1, 0).Format("200601") + "-1"
}

// periodNamed returns the first and last day of s's billing period called name.
func (s *subscription) periodNamed(name string) (first, last time.Time, ok bool) {
	p, err := period.Parse(name)
	if err != nil || (p.Suffix != "") != (s.anchor > 0) || (p.Suffix != "" && p.Suffix != "1") {
		return first, last, false
	}
	if s.anchor == 0 {
		return p.Start(), p.End().AddDate(0, 0, -1), true
	}
	first, last, _ = s.periodOf(time.Date(p.Year, p.Month, s.anchor, 0, 0, 0, 0, time.UTC).AddDate(0, -1, 0))
	return first, last, true
}

func (w *world) addSub(s *subscription) {
	s.index = len(w.subs)
	s.guid = guidFrom("subscription", s.name)
	s.region = &regions[s.index%len(regions)]
	if s.currency == "EUR" {
		s.region = &regions[1+2*(s.index%2)]
	}
	s.hasReservation = s.index%3 == 0
	if s.hasReservation {
		s.reservation = reservation{
			id:        guidFrom("reservation", s.guid),
			name:      "RI_D2s_v3_" + s.region.name,
			orderID:   guidFrom("reservationOrder", s.guid),
			orderName: "Reserved VM Instance, Standard_D2s_v3, " + s.region.display + ", 1 Year",
			hourly:    dec{m: 5712, s: 5}, // 0.05712 an hour
		}
		s.savingsPlan = savingsPlan{
			id:        guidFrom("savingsPlan", s.guid),
			name:      "SP_Compute_" + s.region.name,
			orderID:   guidFrom("savingsPlanOrder", s.guid),
			orderName: "Compute Savings Plan, 3 Years",
			daily:     dec{m: 12}, // 0.50 an hour
		}
	}
	w.subs = append(w.subs, s)
	w.subByID[s.guid] = s
}

// resolve returns the subscriptions a scope covers, in world order, or errNotFound.
func (w *world) resolve(sc scope.Scope) ([]*subscription, error) {
	id := func(i int) string { return strings.ToLower(sc.IDs[i]) }
	var keep func(*subscription) bool
	switch sc.Kind {
	case scope.Subscription:
		s := w.subByID[id(0)]
		if s == nil {
			return nil, errNotFound
		}
		return []*subscription{s}, nil
	case scope.BillingAccount:
		ea := w.eaByID[id(0)]
		if ea == nil {
			return nil, errNotFound
		}
		keep = func(s *subscription) bool { return s.ea == ea }
	case scope.Department:
		d := w.deptByID[id(0)]
		if d == nil {
			return nil, errNotFound
		}
		keep = func(s *subscription) bool { return s.dept == d }
	case scope.EnrollmentAccount:
		a := w.acctByID[id(0)]
		if a == nil {
			return nil, errNotFound
		}
		keep = func(s *subscription) bool { return s.account == a }
	case scope.ManagementGroup:
		if id(0) != strings.ToLower(ManagementGroupID) {
			return nil, errNotFound
		}
		keep = func(s *subscription) bool { return w.mgSub[s.guid] }
	case scope.MCABillingAccount:
		if id(0) != strings.ToLower(w.mca.id) {
			return nil, errNotFound
		}
		keep = func(s *subscription) bool { return s.mca != nil }
	case scope.BillingProfile:
		p := w.profByID[id(1)]
		if id(0) != strings.ToLower(w.mca.id) || p == nil {
			return nil, errNotFound
		}
		keep = func(s *subscription) bool { return s.profile == p }
	case scope.InvoiceSection:
		sec := w.sectByID[id(len(sc.IDs)-1)]
		if id(0) != strings.ToLower(w.mca.id) || sec == nil {
			return nil, errNotFound
		}
		if len(sc.IDs) == 3 && !strings.EqualFold(sc.IDs[1], sec.profile.id) {
			return nil, errNotFound
		}
		keep = func(s *subscription) bool { return s.section == sec }
	case scope.Customer:
		c := w.custByID[id(1)]
		if id(0) != strings.ToLower(w.mca.id) || c == nil {
			return nil, errNotFound
		}
		keep = func(s *subscription) bool { return s.customer == c }
	default:
		return nil, errNotFound
	}
	var out []*subscription
	for _, s := range w.subs {
		if keep(s) {
			out = append(out, s)
		}
	}
	return out, nil
}

// scopes lists every scope of the world, canonical paths.
func (w *world) scopes() []scope.Scope {
	var paths []string
	for _, ea := range w.ea {
		paths = append(paths, "/providers/Microsoft.Billing/billingAccounts/"+ea.id)
		for _, d := range ea.depts {
			paths = append(paths, "/providers/Microsoft.Billing/departments/"+d.id)
			for _, a := range d.accounts {
				paths = append(paths, "/providers/Microsoft.Billing/enrollmentAccounts/"+a.id)
			}
		}
	}
	paths = append(paths, "/providers/Microsoft.Management/managementGroups/"+ManagementGroupID)
	for _, s := range w.subs {
		paths = append(paths, "/subscriptions/"+s.guid)
	}
	mb := "/providers/Microsoft.Billing/billingAccounts/" + w.mca.id
	paths = append(paths, mb)
	for _, p := range w.mca.profiles {
		paths = append(paths, mb+"/billingProfiles/"+p.id)
		for _, sec := range p.sections {
			paths = append(paths, mb+"/billingProfiles/"+p.id+"/invoiceSections/"+sec.id)
		}
	}
	for _, c := range w.mca.customers {
		paths = append(paths, mb+"/customers/"+c.id)
	}
	out := make([]scope.Scope, len(paths))
	for i, p := range paths {
		out[i] = scope.MustParse(p)
	}
	return out
}

// invoiceID is the MCA invoice id of a billing profile's closed month.
func invoiceID(p *billingProfile, yyyymm int) string {
	var b [10]byte
	b[0], b[1] = 'G', byte('1'+p.index)
	v := (yyyymm * 7919) % 100000000
	for i := 9; i >= 2; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return string(b[:])
}
