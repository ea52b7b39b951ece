package main

import (
	"go/parser"
	"go/token"
	"testing"
)

func TestMeasure(t *testing.T) {
	const src = `package p

func flat() {}

func deep(xs []int) {
	for _, x := range xs {
		if x > 0 {
			switch x {
			case 1:
				func() {
					if x == 1 {
						println(x)
					}
				}()
			}
		}
	}
}

type T[K any] struct{}

func (t *T[K]) M() { if true {} }
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "p.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := measure(fset, "p.go", f)
	want := []Func{{"p.go:flat", 1, 0}, {"p.go:deep", 14, 5}, {"p.go:T.M", 1, 1}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("got %+v, want %+v", got[i], want[i])
		}
	}
}

// TestModuleWithinLimits keeps the module's non-test code at no function over 80 lines and no
// nesting deeper than 4 (issue #17's structure rule).
func TestModuleWithinLimits(t *testing.T) {
	funcs, err := Scan("../../..")
	if err != nil {
		t.Fatal(err)
	}
	if len(funcs) < 100 {
		t.Fatalf("scanned %d functions: not the module root?", len(funcs))
	}
	for _, f := range funcs {
		if f.Lines > 80 || f.Depth > 4 {
			t.Errorf("%s: %d lines, nesting %d (limits 80 and 4)", f.Name, f.Lines, f.Depth)
		}
	}
}
