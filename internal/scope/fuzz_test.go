package scope_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/usage-export/usage-export/internal/scope"
	"github.com/usage-export/usage-export/internal/store"
)

// FuzzParse feeds arbitrary strings to scope.Parse. A rejected string must be refused with
// ErrInvalid. An accepted one must be safe to put into a URL path and a blob name: its ids use
// only the id alphabet, its path has no query, fragment, escape, backslash, control character,
// whitespace or dot segment and is printable ASCII, it parses again to the same scope, and its
// Hive folder is one valid blob-name segment that ParseFolder reverses.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"/subscriptions/00000000-0000-0000-0000-000000000000",
		"/providers/Microsoft.Billing/billingAccounts/8608480",
		"/providers/Microsoft.Billing/departments/301001/providers/Microsoft.Billing/billingPeriods/202401",
		"/providers/Microsoft.Billing/billingAccounts/1234:56789_2019-05-31/billingProfiles/AB12/invoiceSections/EF56",
		"/providers/Microsoft.Management/managementGroups/mg-contoso-prod",
		"/providers/Microsoft.Billing/departments/../x",
		"/subscriptions/a?b#c",
		"/subscriptions/%2e%2e",
		"\x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		sc, err := scope.Parse(in)
		if err != nil {
			if !errors.Is(err, scope.ErrInvalid) {
				t.Fatalf("Parse(%q) error %v does not wrap ErrInvalid", in, err)
			}
			return
		}
		if sc.IsZero() || len(sc.IDs) == 0 {
			t.Fatalf("Parse(%q) = %+v: accepted without a kind or ids", in, sc)
		}
		for _, id := range sc.IDs {
			if !idOK(id) {
				t.Fatalf("Parse(%q): id %q is outside the id alphabet", in, id)
			}
		}
		for _, p := range []string{sc.Path(), sc.String()} {
			if !pathOK(p) {
				t.Fatalf("Parse(%q): path %q could smuggle something into a URL", in, p)
			}
		}
		again, err := scope.Parse(sc.String())
		if err != nil || !again.Equal(sc) || again.String() != sc.String() {
			t.Fatalf("Parse(%q).String() = %q does not parse to the same scope: %+v, %v", in, sc.String(), again, err)
		}
		folder := sc.Folder()
		if strings.ContainsAny(folder, "/\\") || strings.HasPrefix(folder, ".") {
			t.Fatalf("Parse(%q): folder %q is not one path segment", in, folder)
		}
		name := "usage/metric=actualcost/scope=" + folder + "/billingPeriod=202401/part-20240101-20240101.jsonl.gz"
		if err := store.ValidateName(name); err != nil {
			t.Fatalf("Parse(%q): folder %q does not make a valid blob name: %v", in, folder, err)
		}
		back, err := scope.ParseFolder(folder)
		if err != nil || back.Kind != sc.Kind || strings.Join(back.IDs, "/") != strings.Join(sc.IDs, "/") {
			t.Fatalf("ParseFolder(%q) = %+v, %v; want kind %s ids %v", folder, back, err, sc.Kind, sc.IDs)
		}
	})
}

// idOK is the id alphabet scope.Parse documents: [A-Za-z0-9][A-Za-z0-9._:()-]{0,127}.
func idOK(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || !strings.ContainsRune("._:()-", rune(c))) {
			return false
		}
	}
	return true
}

// pathOK reports whether p is a plain absolute path of printable ASCII without a query,
// fragment, escape, backslash, whitespace or empty, "." or ".." segment.
func pathOK(p string) bool {
	if !strings.HasPrefix(p, "/") {
		return false
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c >= 0x7f || strings.IndexByte("?#%\\", c) >= 0 {
			return false
		}
	}
	for _, seg := range strings.Split(p[1:], "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	return true
}
