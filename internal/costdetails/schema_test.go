package costdetails

import (
	"os"
	"strings"
	"testing"
)

// TestDocsListEveryColumn holds docs/sources.md to the schema tables: every column of every
// version appears with the member it maps to.
func TestDocsListEveryColumn(t *testing.T) {
	b, err := os.ReadFile("../../docs/sources.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, s := range Schemas {
		for _, c := range s.Columns {
			target := "`properties." + c.Property + "`"
			switch c.Property {
			case "":
				target = "`" + ExtraColumnsMember + "." + c.Header + "`"
			case "tags":
				target = "`tags` (object)"
			}
			if !strings.Contains(doc, "| `"+c.Header+"`") || !strings.Contains(doc, target) {
				t.Errorf("docs/sources.md does not list %s column %s → %s", s.Name, c.Header, target)
			}
		}
	}
}
