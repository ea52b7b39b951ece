package scope

import (
	"fmt"
	"strings"
)

// Relation says how two configured scopes relate.
type Relation int

// Relations, from the configuration alone.
const (
	Disjoint   Relation = iota // known not to share records
	Contains                   // the first contains the second (definite, from the ids)
	MayOverlap                 // could share records; only the data can tell (EA hierarchy, subscriptions)
	Same                       // the same scope twice
)

func (r Relation) String() string {
	return [...]string{"disjoint", "contains", "may overlap", "same"}[r]
}

// Relate tells how a relates to b from their paths alone. EA departments, enrollment accounts,
// subscriptions and management groups do not name their parents in their ids, so an EA
// enrollment "may overlap" any of them; MCA paths do name their parents, so containment there is
// definite.
func Relate(a, b Scope) Relation {
	if a.Equal(b) || (a.Kind == b.Kind && idsEqual(a.IDs, b.IDs)) {
		return Same
	}
	if a.Channel() == Modern && b.Channel() == Modern {
		if hasPrefixIDs(b.IDs, a.IDs) && rank(a.Kind) < rank(b.Kind) {
			return Contains
		}
		if a.Kind == InvoiceSection && b.Kind == InvoiceSection && a.IDs[0] == b.IDs[0] &&
			strings.EqualFold(a.IDs[len(a.IDs)-1], b.IDs[len(b.IDs)-1]) {
			return Same // the same section written with and without its profile
		}
		if strings.EqualFold(a.IDs[0], b.IDs[0]) && a.Kind != b.Kind && (a.Kind == MCABillingAccount || b.Kind == MCABillingAccount) {
			return MayOverlap
		}
		return Disjoint
	}
	if a.Channel() == Legacy || b.Channel() == Legacy || a.Kind == Subscription || b.Kind == Subscription {
		// EA hierarchy (enrollment ⊃ department ⊃ enrollment account ⊃ subscription) and
		// management groups cannot be resolved from ids; same-kind EA scopes with other ids are
		// disjoint.
		if a.Kind == b.Kind && a.Kind != ManagementGroup {
			return Disjoint
		}
		if (a.Channel() == Modern && b.Channel() == Legacy) || (a.Channel() == Legacy && b.Channel() == Modern) {
			return Disjoint
		}
		return MayOverlap
	}
	return Disjoint
}

func rank(k Kind) int {
	switch k {
	case MCABillingAccount:
		return 0
	case BillingProfile, Customer:
		return 1
	case InvoiceSection:
		return 2
	}
	return 3
}

func idsEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !strings.EqualFold(a[i], b[i]) {
			return false
		}
	}
	return true
}

func hasPrefixIDs(ids, prefix []string) bool {
	if len(prefix) > len(ids) {
		return false
	}
	for i := range prefix {
		if !strings.EqualFold(ids[i], prefix[i]) {
			return false
		}
	}
	return true
}

// Overlap is a pair of configured scopes that can double-count in a lake.
type Overlap struct {
	A, B     Scope
	Relation Relation
}

func (o Overlap) String() string {
	return fmt.Sprintf("%s %s %s", o.A, o.Relation, o.B)
}

// Overlaps lists every pair of scopes in list that is not known to be disjoint.
func Overlaps(list []Scope) []Overlap {
	var out []Overlap
	for i := range list {
		for j := i + 1; j < len(list); j++ {
			a, b := list[i], list[j]
			r := Relate(a, b)
			if r == Disjoint {
				r2 := Relate(b, a)
				if r2 == Disjoint {
					continue
				}
				a, b, r = b, a, r2
			}
			out = append(out, Overlap{A: a, B: b, Relation: r})
		}
	}
	return out
}
