package decimal

import (
	"math/rand/v2"
	"strconv"
	"testing"
)

func TestSum(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want string
	}{
		{"empty", nil, "0"},
		{"ints", []string{"1", "2", "-4"}, "-1"},
		{"fixture decimals", []string{"0.000001980949998", "1.84763819095477"}, "1.847640171904768"},
		{"carry", []string{"0.9", "0.2"}, "1.1"},
		{"borrow", []string{"0.1", "-0.3"}, "-0.2"},
		{"exponent", []string{"1.5E-7", "1e2"}, "100.00000015"},
		{"very precise", []string{"0.1234567890123456789012", "0.0000000000000000000008"}, "0.123456789012345678902"},
		{"zero", []string{"0", "-0", "0.000"}, "0"},
		{"negative result", []string{"-12.25"}, "-12.25"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Sum
			for _, v := range tt.in {
				if err := s.AddString(v); err != nil {
					t.Fatalf("Add(%q): %v", v, err)
				}
			}
			if got := s.String(); got != tt.want {
				t.Errorf("sum = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestSyntax(t *testing.T) {
	for _, v := range []string{"", "-", "abc", "1.", ".5", "1/2", "1 2", "0x10", "NaN"} {
		var s Sum
		if err := s.AddString(v); err == nil {
			t.Errorf("Add(%q) = nil error, want ErrSyntax", v)
		}
	}
}

// TestOrderIndependent checks the property the manifest relies on: any order gives the same sum.
func TestOrderIndependent(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	vals := make([]string, 2000)
	for i := range vals {
		vals[i] = strconv.FormatFloat(r.Float64()*1000-100, 'f', r.IntN(15), 64)
	}
	var a, b, c Sum
	for _, v := range vals {
		_ = a.AddString(v)
	}
	for i := len(vals) - 1; i >= 0; i-- {
		_ = b.AddString(vals[i])
	}
	var half1, half2 Sum
	for i, v := range vals {
		if i%2 == 0 {
			_ = half1.AddString(v)
		} else {
			_ = half2.AddString(v)
		}
	}
	c.AddSum(half1)
	c.AddSum(half2)
	if a.String() != b.String() || a.String() != c.String() {
		t.Fatalf("order changed the sum: %s %s %s", a.String(), b.String(), c.String())
	}
}

func BenchmarkAdd(b *testing.B) {
	v := []byte("0.054693034210767")
	var s Sum
	for b.Loop() {
		_ = s.Add(v)
	}
}
