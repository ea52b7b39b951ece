// Package scope parses, validates and names the billing scopes that the Consumption and Cost
// Details APIs accept.
package scope

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Kind is the type of a billing scope.
type Kind string

// The scope kinds of the usageDetails API (2019-10-01 and later), plus the EA/MCA split of the
// billing account, which the path alone cannot tell apart: MCA billing account ids contain ':'.
const (
	BillingAccount    Kind = "billingAccount"    // EA enrollment: /providers/Microsoft.Billing/billingAccounts/{id}
	Department        Kind = "department"        // EA: /providers/Microsoft.Billing/departments/{id}
	EnrollmentAccount Kind = "enrollmentAccount" // EA: /providers/Microsoft.Billing/enrollmentAccounts/{id}
	Subscription      Kind = "subscription"      // /subscriptions/{id}
	ManagementGroup   Kind = "managementGroup"   // /providers/Microsoft.Management/managementGroups/{id}
	MCABillingAccount Kind = "mcaBillingAccount" // MCA: /providers/Microsoft.Billing/billingAccounts/{id with ':'}
	BillingProfile    Kind = "billingProfile"    // MCA: …/billingAccounts/{a}/billingProfiles/{p}
	InvoiceSection    Kind = "invoiceSection"    // MCA: …/billingAccounts/{a}[/billingProfiles/{p}]/invoiceSections/{s}
	Customer          Kind = "customer"          // MCA partner: …/billingAccounts/{a}/customers/{c}
)

// Channel is the billing channel of a scope, which decides the record shape and the date-range
// dialect.
type Channel int

// Channels. Subscriptions can be either: their records say which (kind legacy or modern).
const (
	Legacy Channel = iota + 1 // EA and pay-as-you-go: legacy records, $filter dates
	Modern                    // MCA and CSP: modern records, startDate/endDate
	Either                    // subscription: depends on the offer
)

// Scope is a parsed billing scope. The zero value is not a valid scope.
type Scope struct {
	Kind Kind
	// IDs holds the ids along the path, outermost first: one for most kinds, two for a billing
	// profile or customer (account, profile/customer), two or three for an invoice section.
	IDs []string
	// BillingPeriod is the optional billing-period sub-scope name (e.g. "202401"), or "".
	BillingPeriod string

	path string // the configured path without the billing-period sub-scope, one leading '/'
}

// Accepted lists the scope forms Parse accepts, for error messages and documentation.
const Accepted = `accepted scope forms:
  /subscriptions/{subscriptionId}
  /providers/Microsoft.Billing/billingAccounts/{billingAccountId}            (EA enrollment, or MCA when the id contains ':')
  /providers/Microsoft.Billing/departments/{departmentId}
  /providers/Microsoft.Billing/enrollmentAccounts/{enrollmentAccountId}
  /providers/Microsoft.Management/managementGroups/{managementGroupId}
  /providers/Microsoft.Billing/billingAccounts/{id}/billingProfiles/{billingProfileId}
  /providers/Microsoft.Billing/billingAccounts/{id}/billingProfiles/{profileId}/invoiceSections/{invoiceSectionId}
  /providers/Microsoft.Billing/billingAccounts/{id}/customers/{customerId}
each optionally followed by /providers/Microsoft.Billing/billingPeriods/{YYYYMM} (not on MCA scopes)`

// ErrInvalid is wrapped by every error Parse returns.
var ErrInvalid = errors.New("invalid scope")

// idPattern bounds what an id may contain. ARM ids of these kinds use letters, digits and
// "-_.:()" ; anything else (slashes, '%', '?', '#', spaces, control characters) is refused so a
// scope can never smuggle a path or query into a URL or a blob name.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:()\-]{0,127}$`)

// periodPattern accepts the billing-period names the API uses: yyyyMM and yyyyMMdd.
var periodPattern = regexp.MustCompile(`^[0-9]{6}([0-9]{2})?$`)

// maxLen bounds the length of a scope string.
const maxLen = 512

// Parse parses a scope path. Segment names are matched case-insensitively; the path is kept as
// written for the API. A leading slash is optional and a trailing slash is ignored.
func Parse(s string) (Scope, error) {
	fail := func(why string) (Scope, error) {
		return Scope{}, fmt.Errorf("%w %q: %s\n%s", ErrInvalid, truncate(s), why, Accepted)
	}
	if len(s) > maxLen {
		return fail(fmt.Sprintf("longer than %d characters", maxLen))
	}
	trimmed := strings.TrimSpace(s)
	if trimmed == "" {
		return fail("empty")
	}
	trimmed = strings.TrimSuffix(strings.TrimPrefix(trimmed, "/"), "/")
	segs := strings.Split(trimmed, "/")
	for _, seg := range segs {
		if seg == "" {
			return fail("empty path segment")
		}
	}
	var sc Scope
	// Split off an optional billing-period sub-scope.
	if n := len(segs); n >= 4 && segmentIs(segs[n-4], "providers") &&
		segmentIs(segs[n-3], "Microsoft.Billing") && segmentIs(segs[n-2], "billingPeriods") {
		if !periodPattern.MatchString(segs[n-1]) {
			return fail(fmt.Sprintf("billing period %q is not yyyyMM", segs[n-1]))
		}
		sc.BillingPeriod = segs[n-1]
		segs = segs[:n-4]
	}
	eq := func(i int, name string) bool { return i < len(segs) && segmentIs(segs[i], name) }
	switch {
	case len(segs) == 2 && eq(0, "subscriptions"):
		sc.Kind, sc.IDs = Subscription, []string{segs[1]}
	case len(segs) == 4 && eq(0, "providers") && eq(1, "Microsoft.Management") && eq(2, "managementGroups"):
		sc.Kind, sc.IDs = ManagementGroup, []string{segs[3]}
	case len(segs) >= 4 && eq(0, "providers") && eq(1, "Microsoft.Billing"):
		rest := segs[2:]
		req := func(i int, name string) bool { return i < len(rest) && segmentIs(rest[i], name) }
		switch {
		case len(rest) == 2 && req(0, "departments"):
			sc.Kind, sc.IDs = Department, []string{rest[1]}
		case len(rest) == 2 && req(0, "enrollmentAccounts"):
			sc.Kind, sc.IDs = EnrollmentAccount, []string{rest[1]}
		case len(rest) == 2 && req(0, "billingAccounts"):
			sc.Kind, sc.IDs = BillingAccount, []string{rest[1]}
			if strings.Contains(rest[1], ":") {
				sc.Kind = MCABillingAccount
			}
		case len(rest) == 4 && req(0, "billingAccounts") && req(2, "billingProfiles"):
			sc.Kind, sc.IDs = BillingProfile, []string{rest[1], rest[3]}
		case len(rest) == 4 && req(0, "billingAccounts") && req(2, "customers"):
			sc.Kind, sc.IDs = Customer, []string{rest[1], rest[3]}
		case len(rest) == 4 && req(0, "billingAccounts") && req(2, "invoiceSections"):
			// Published examples write an invoice section without its billing profile.
			sc.Kind, sc.IDs = InvoiceSection, []string{rest[1], rest[3]}
		case len(rest) == 6 && req(0, "billingAccounts") && req(2, "billingProfiles") && req(4, "invoiceSections"):
			sc.Kind, sc.IDs = InvoiceSection, []string{rest[1], rest[3], rest[5]}
		default:
			return fail("unknown Microsoft.Billing scope")
		}
	default:
		return fail("not a usage-details scope")
	}
	for _, id := range sc.IDs {
		if !idPattern.MatchString(id) {
			return fail(fmt.Sprintf("id %q has characters outside [A-Za-z0-9._:()-] or is too long", truncate(id)))
		}
	}
	if sc.BillingPeriod != "" && sc.Channel() == Modern {
		return fail("MCA scopes have no billing-period sub-scope; export a month range instead")
	}
	sc.path = "/" + strings.Join(segs, "/")
	return sc, nil
}

// segmentIs reports whether the path segment seg is the ASCII name, ignoring ASCII case.
// strings.EqualFold alone would also accept letters that fold onto ASCII ones ("ſ" U+017F onto
// "s", "K" U+212A onto "k"), and the path, kept as written, would then carry them to the API;
// both of those are multi-byte, so equal lengths rule them out.
func segmentIs(seg, name string) bool { return len(seg) == len(name) && strings.EqualFold(seg, name) }

// MustParse is Parse for tests and constants; it panics on error.
func MustParse(s string) Scope {
	sc, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return sc
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// Path returns the scope path as configured, with one leading slash and without the
// billing-period sub-scope.
func (s Scope) Path() string { return s.path }

// PeriodPath returns the path including the billing-period sub-scope when one is set, or when
// period is not empty (period wins over the configured one).
func (s Scope) PeriodPath(period string) string {
	if period == "" {
		period = s.BillingPeriod
	}
	if period == "" {
		return s.path
	}
	return s.path + "/providers/Microsoft.Billing/billingPeriods/" + period
}

// String returns the full configured scope, billing-period sub-scope included.
func (s Scope) String() string { return s.PeriodPath("") }

// IsZero reports whether s is the zero Scope.
func (s Scope) IsZero() bool { return s.Kind == "" }

// Channel tells which billing channel the scope belongs to.
func (s Scope) Channel() Channel {
	switch s.Kind {
	case BillingAccount, Department, EnrollmentAccount, ManagementGroup:
		return Legacy
	case MCABillingAccount, BillingProfile, InvoiceSection, Customer:
		return Modern
	default:
		return Either
	}
}

// SupportsBillingPeriod reports whether the usageDetails API accepts a billing-period sub-scope
// on this scope.
func (s Scope) SupportsBillingPeriod() bool { return s.Channel() != Modern }

// Equal reports whether two scopes name the same thing (ids compared case-insensitively, as ARM
// does).
func (s Scope) Equal(o Scope) bool {
	if s.Kind != o.Kind || len(s.IDs) != len(o.IDs) || !strings.EqualFold(s.BillingPeriod, o.BillingPeriod) {
		return false
	}
	for i := range s.IDs {
		if !strings.EqualFold(s.IDs[i], o.IDs[i]) {
			return false
		}
	}
	return true
}
