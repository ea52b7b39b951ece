package scope

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in       string
		kind     Kind
		ids      string
		period   string
		channel  Channel
		wantPath string
	}{
		{"/subscriptions/00000000-0000-0000-0000-000000000000", Subscription, "00000000-0000-0000-0000-000000000000", "", Either, "/subscriptions/00000000-0000-0000-0000-000000000000"},
		{"subscriptions/00000000-0000-0000-0000-000000000000/", Subscription, "00000000-0000-0000-0000-000000000000", "", Either, "/subscriptions/00000000-0000-0000-0000-000000000000"},
		{"/providers/Microsoft.Billing/billingAccounts/8608480", BillingAccount, "8608480", "", Legacy, ""},
		{"providers/Microsoft.Billing/BillingAccounts/1234", BillingAccount, "1234", "", Legacy, "/providers/Microsoft.Billing/BillingAccounts/1234"},
		{"/providers/Microsoft.Billing/Departments/1234", Department, "1234", "", Legacy, ""},
		{"/providers/Microsoft.Billing/EnrollmentAccounts/5678", EnrollmentAccount, "5678", "", Legacy, ""},
		{"/providers/Microsoft.Management/managementGroups/finance-mg", ManagementGroup, "finance-mg", "", Legacy, ""},
		{"/providers/Microsoft.Billing/billingAccounts/1234:56789_2019-05-31", MCABillingAccount, "1234:56789_2019-05-31", "", Modern, ""},
		{"/providers/Microsoft.Billing/billingAccounts/1234:56789/billingProfiles/AB12", BillingProfile, "1234:56789/AB12", "", Modern, ""},
		{"/providers/Microsoft.Billing/billingAccounts/1234:56789/billingProfiles/AB12/invoiceSections/EF56", InvoiceSection, "1234:56789/AB12/EF56", "", Modern, ""},
		{"/providers/Microsoft.Billing/BillingAccounts/1234:56789/invoiceSections/98765", InvoiceSection, "1234:56789/98765", "", Modern, ""},
		{"/providers/Microsoft.Billing/billingAccounts/1234:56789/customers/11111111-2222", Customer, "1234:56789/11111111-2222", "", Modern, ""},
		{"/providers/Microsoft.Billing/departments/1234/providers/Microsoft.Billing/billingPeriods/201903", Department, "1234", "201903", Legacy, "/providers/Microsoft.Billing/departments/1234"},
		{"/subscriptions/abc/providers/Microsoft.Billing/billingPeriods/20180801", Subscription, "abc", "20180801", Either, "/subscriptions/abc"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			s, err := Parse(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if s.Kind != tt.kind || strings.Join(s.IDs, "/") != tt.ids || s.BillingPeriod != tt.period || s.Channel() != tt.channel {
				t.Errorf("got %s %v %q channel %d, want %s %s %q %d", s.Kind, s.IDs, s.BillingPeriod, s.Channel(), tt.kind, tt.ids, tt.period, tt.channel)
			}
			want := tt.wantPath
			if want == "" {
				want = tt.in
			}
			if s.Path() != want {
				t.Errorf("Path() = %q, want %q (kept as configured)", s.Path(), want)
			}
			back, err := ParseFolder(s.Folder())
			if err != nil || !back.Equal(Scope{Kind: s.Kind, IDs: s.IDs}) {
				t.Errorf("ParseFolder(%q) = %v, %v; want the same scope", s.Folder(), back, err)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	for _, in := range []string{
		"", "/", "/subscriptions", "/subscriptions/", "/resourceGroups/rg",
		"/subscriptions/abc/resourceGroups/rg",
		"/providers/Microsoft.Billing/billingAccounts/../../etc",
		"/providers/Microsoft.Billing/billingAccounts/a%2Fb",
		"/providers/Microsoft.Billing/billingAccounts/a?x=1",
		"/providers/Microsoft.Billing/billingAccounts/a b",
		"/providers/Microsoft.Billing/billingAccounts/a\nb",
		"/providers/Microsoft.Billing/billingAccounts//x",
		"/providers/Microsoft.Billing/unknown/1",
		"/providers/Microsoft.Billing/departments/1/providers/Microsoft.Billing/billingPeriods/2019",
		"/providers/Microsoft.Billing/billingAccounts/1:2/providers/Microsoft.Billing/billingPeriods/201903",
		"https://management.azure.com/subscriptions/abc",
		strings.Repeat("/subscriptions/x", 100),
	} {
		_, err := Parse(in)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q) = %v, want ErrInvalid", in, err)
			continue
		}
		if !strings.Contains(err.Error(), "accepted scope forms") {
			t.Errorf("Parse(%q) error does not name the accepted forms: %v", in, err)
		}
	}
}

func TestFolderIsHiveSafe(t *testing.T) {
	s := MustParse("/providers/Microsoft.Billing/billingAccounts/1234:56789_2019-05-31/billingProfiles/AB12-CD34")
	if got, want := s.Folder(), "billingProfile-1234%3A56789_2019-05-31%2FAB12-CD34"; got != want {
		t.Errorf("Folder() = %q, want %q", got, want)
	}
	for _, bad := range []string{"billingAccount", "nokind-1", "billingProfile-onlyone", "subscription-%zz"} {
		if _, err := ParseFolder(bad); err == nil {
			t.Errorf("ParseFolder(%q) = nil error", bad)
		}
	}
	if got, _ := UnescapePathName(EscapePathName("a:b/c=d%e")); got != "a:b/c=d%e" {
		t.Errorf("escape round trip = %q", got)
	}
}

func TestOverlaps(t *testing.T) {
	ea := MustParse("/providers/Microsoft.Billing/billingAccounts/8608480")
	dept := MustParse("/providers/Microsoft.Billing/departments/1")
	dept2 := MustParse("/providers/Microsoft.Billing/departments/2")
	sub := MustParse("/subscriptions/abc")
	mca := MustParse("/providers/Microsoft.Billing/billingAccounts/1:2")
	prof := MustParse("/providers/Microsoft.Billing/billingAccounts/1:2/billingProfiles/P")
	sec := MustParse("/providers/Microsoft.Billing/billingAccounts/1:2/billingProfiles/P/invoiceSections/S")
	otherProf := MustParse("/providers/Microsoft.Billing/billingAccounts/9:9/billingProfiles/Q")
	tests := []struct {
		a, b Scope
		want Relation
	}{
		{ea, dept, MayOverlap},
		{dept, dept2, Disjoint},
		{dept, sub, MayOverlap},
		{mca, prof, Contains},
		{prof, sec, Contains},
		{mca, sec, Contains},
		{prof, otherProf, Disjoint},
		{ea, prof, Disjoint},
		{ea, ea, Same},
	}
	for _, tt := range tests {
		if got := Relate(tt.a, tt.b); got != tt.want {
			t.Errorf("Relate(%s, %s) = %s, want %s", tt.a, tt.b, got, tt.want)
		}
	}
	got := Overlaps([]Scope{sec, prof, dept2, otherProf})
	if len(got) != 1 || got[0].A.Kind != BillingProfile || got[0].Relation != Contains {
		t.Errorf("Overlaps = %v, want the profile containing the section", got)
	}
}
