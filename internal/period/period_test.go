package period

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func utc(y int, m time.Month, d, h, min, s int) time.Time {
	return time.Date(y, m, d, h, min, s, 0, time.UTC)
}

func names(ps []Period) string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return strings.Join(out, ",")
}

// TestScheduled is the timer's plan around month boundaries (UTC), the restatement window and
// leap years: the current period, and the previous one first while it is still closing.
func TestScheduled(t *testing.T) {
	tests := []struct {
		name    string
		now     time.Time
		restate int
		want    string
	}{
		{"first instant of a month", utc(2024, time.March, 1, 0, 0, 0), 5, "202402,202403"},
		{"last instant of a month", utc(2024, time.February, 29, 23, 59, 59), 5, "202402"},
		{"inside the window", utc(2024, time.March, 3, 4, 0, 0), 5, "202402,202403"},
		{"last second of the window", utc(2024, time.March, 5, 23, 59, 59), 5, "202402,202403"},
		{"window just over", utc(2024, time.March, 6, 0, 0, 0), 5, "202403"},
		{"mid-month", utc(2024, time.March, 17, 4, 0, 0), 5, "202403"},
		{"new year", utc(2025, time.January, 1, 0, 0, 0), 5, "202412,202501"},
		{"new year, window over", utc(2025, time.January, 6, 0, 0, 0), 5, "202501"},
		{"leap day is in February", utc(2024, time.February, 29, 12, 0, 0), 5, "202402"},
		{"after a leap February", utc(2024, time.March, 2, 0, 0, 0), 1, "202403"},
		{"after a leap February, 2-day window", utc(2024, time.March, 2, 0, 0, 0), 2, "202402,202403"},
		{"after a common February", utc(2023, time.March, 1, 12, 0, 0), 1, "202302,202303"},
		{"no window", utc(2024, time.March, 1, 0, 0, 0), 0, "202403"},
		{"31-day window reaches into the next month", utc(2024, time.March, 31, 23, 0, 0), 31, "202402,202403"},
		{"31-day window, the next month starts", utc(2024, time.April, 1, 0, 0, 0), 31, "202403,202404"},
		{"local offset: already March in UTC", time.Date(2024, time.February, 29, 20, 0, 0, 0, time.FixedZone("UTC-5", -5*3600)), 5, "202402,202403"},
		{"local offset: still February in UTC", time.Date(2024, time.March, 1, 0, 30, 0, 0, time.FixedZone("UTC+1", 3600)), 5, "202402"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := names(Scheduled(tt.now, tt.restate)); got != tt.want {
				t.Errorf("Scheduled(%s, %d) = %s, want %s", tt.now.Format(time.RFC3339), tt.restate, got, tt.want)
			}
		})
	}
}

// TestScheduledNeverFinal: over two years hour by hour, the plan never holds a final or future
// period and always ends with the current one.
func TestScheduledNeverFinal(t *testing.T) {
	for now := utc(2023, time.January, 1, 0, 0, 0); now.Before(utc(2025, time.January, 1, 0, 0, 0)); now = now.Add(time.Hour) {
		plan := Scheduled(now, 5)
		if plan[len(plan)-1] != Of(now) {
			t.Fatalf("%s: plan %s does not end with the current period", now, names(plan))
		}
		for _, p := range plan {
			if st := p.StatusAt(now, 5); st == Final || st == Future {
				t.Fatalf("%s: plan %s holds %s, which is %s", now, names(plan), p, st)
			}
		}
	}
}

func TestStatusAt(t *testing.T) {
	feb := Period{Year: 2024, Month: time.February}
	tests := []struct {
		now  time.Time
		want Status
	}{
		{utc(2024, time.January, 31, 23, 59, 59), Future},
		{utc(2024, time.February, 1, 0, 0, 0), Open},
		{utc(2024, time.February, 29, 23, 59, 59), Open},
		{utc(2024, time.March, 1, 0, 0, 0), Closing},
		{utc(2024, time.March, 5, 23, 59, 59), Closing},
		{utc(2024, time.March, 6, 0, 0, 0), Final},
	}
	for _, tt := range tests {
		if got := feb.StatusAt(tt.now, 5); got != tt.want {
			t.Errorf("202402 at %s = %s, want %s", tt.now.Format(time.RFC3339), got, tt.want)
		}
	}
}

func TestDays(t *testing.T) {
	tests := []struct {
		p    Period
		want int
	}{
		{Period{Year: 2024, Month: time.February}, 29},
		{Period{Year: 2023, Month: time.February}, 28},
		{Period{Year: 2000, Month: time.February}, 29}, // divisible by 400
		{Period{Year: 2100, Month: time.February}, 28}, // divisible by 100 only
		{Period{Year: 2024, Month: time.April}, 30},
		{Period{Year: 2024, Month: time.December}, 31},
	}
	for _, tt := range tests {
		if got := tt.p.Days(); got != tt.want {
			t.Errorf("%s.Days() = %d, want %d", tt.p, got, tt.want)
		}
	}
	if got, want := (Period{Year: 2024, Month: time.December}).End(), utc(2025, time.January, 1, 0, 0, 0); !got.Equal(want) {
		t.Errorf("202412.End() = %s, want %s", got, want)
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want string
		err  bool
	}{
		{"202402", "202402", false},
		{"2024-02", "202402", false},
		{"201405", "201405", false},
		{"201404", "", true}, // before the API's data
		{"202413", "", true},
		{"202400", "", true},
		{"2024-2", "", true},
		{"20240", "", true},
		{"2024021", "", true},
		{" 202402", "", true},
		{"201702-1", "201702-1", false}, // pay-as-you-go names carry a suffix
		{"201806-12", "201806-12", false},
		{"201702-", "", true},
		{"201702-x", "", true},
		{"2017-02-1", "", true},
		{"", "", true},
	}
	for _, tt := range tests {
		p, err := Parse(tt.in)
		switch {
		case tt.err && err == nil:
			t.Errorf("Parse(%q) = %s, want an error", tt.in, p)
		case tt.err && !errors.Is(err, ErrInvalid):
			t.Errorf("Parse(%q) error %v does not wrap ErrInvalid", tt.in, err)
		case !tt.err && (err != nil || p.String() != tt.want):
			t.Errorf("Parse(%q) = %s, %v; want %s", tt.in, p, err, tt.want)
		}
	}
}

func TestRange(t *testing.T) {
	tests := []struct {
		first, last Period
		max         int
		want        string
		err         bool
	}{
		{Period{Year: 2023, Month: time.November}, Period{Year: 2024, Month: time.February}, 36, "202311,202312,202401,202402", false},
		{Period{Year: 2024, Month: time.February}, Period{Year: 2024, Month: time.February}, 1, "202402", false},
		{Period{Year: 2021, Month: time.January}, Period{Year: 2023, Month: time.December}, 36, "", false}, // exactly 36
		{Period{Year: 2021, Month: time.January}, Period{Year: 2024, Month: time.January}, 36, "", true},   // 37
		{Period{Year: 2024, Month: time.March}, Period{Year: 2024, Month: time.February}, 36, "", true},
		{Period{Year: 2014, Month: time.May}, Period{Year: 2024, Month: time.January}, 0, "", false}, // no limit
	}
	for _, tt := range tests {
		got, err := Range(tt.first, tt.last, tt.max)
		if tt.err {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("Range(%s, %s, %d) = %s, %v; want an ErrInvalid", tt.first, tt.last, tt.max, names(got), err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Range(%s, %s, %d): %v", tt.first, tt.last, tt.max, err)
			continue
		}
		n := (tt.last.Year-tt.first.Year)*12 + int(tt.last.Month-tt.first.Month) + 1
		if len(got) != n || got[0] != tt.first || got[len(got)-1] != tt.last || (tt.want != "" && names(got) != tt.want) {
			t.Errorf("Range(%s, %s, %d) = %s", tt.first, tt.last, tt.max, names(got))
		}
	}
}

func TestAdd(t *testing.T) {
	p := Period{Year: 2024, Month: time.January}
	for _, tt := range []struct {
		n    int
		want string
	}{{-1, "202312"}, {1, "202402"}, {12, "202501"}, {-13, "202212"}, {0, "202401"}} {
		if got := p.Add(tt.n).String(); got != tt.want {
			t.Errorf("202401.Add(%d) = %s, want %s", tt.n, got, tt.want)
		}
	}
	// Add is month arithmetic, never day overflow (time.AddDate on the 31st would skip months).
	if got := (Period{Year: 2024, Month: time.January}).Add(1); got != (Period{Year: 2024, Month: time.February}) {
		t.Errorf("Add(1) from January = %s", got)
	}
}

// TestAnchored: a pay-as-you-go period keeps its name (the folder's billingPeriod= value parses
// back to it) and its own days; status and restatement follow its real end.
func TestAnchored(t *testing.T) {
	p, err := Anchored("202402-1", utc(2024, time.January, 24, 0, 0, 0), utc(2024, time.February, 23, 0, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if p.String() != "202402-1" || p.Calendar() || p.Days() != 31 ||
		!p.Start().Equal(utc(2024, time.January, 24, 0, 0, 0)) || !p.End().Equal(utc(2024, time.February, 24, 0, 0, 0)) {
		t.Errorf("Anchored = %s %s..%s (%d days)", p, p.Start(), p.End(), p.Days())
	}
	back, err := Parse(p.String())
	if err != nil || back.String() != p.String() || back.Suffix != "1" {
		t.Errorf("Parse(%q) = %+v, %v: the name does not round-trip", p.String(), back, err)
	}
	for _, tt := range []struct {
		now  time.Time
		want Status
	}{
		{utc(2024, time.January, 23, 12, 0, 0), Future},
		{utc(2024, time.February, 23, 23, 0, 0), Open},   // the calendar month would be open too
		{utc(2024, time.February, 26, 0, 0, 0), Closing}, // ended on the 23rd
		{utc(2024, time.February, 29, 0, 0, 0), Final},   // 5 days after its real end, calendar February still open
	} {
		if got := p.StatusAt(tt.now, 5); got != tt.want {
			t.Errorf("StatusAt(%s) = %s, want %s", tt.now.Format(time.DateOnly), got, tt.want)
		}
	}
	cal, err := Anchored("202402", utc(2024, time.February, 1, 0, 0, 0), utc(2024, time.February, 29, 0, 0, 0))
	if err != nil || !cal.Calendar() || cal != (Period{Year: 2024, Month: time.February}) {
		t.Errorf("Anchored calendar month = %+v, %v; want the plain calendar period", cal, err)
	}
	if _, err := Anchored("202402-1", utc(2024, time.February, 3, 0, 0, 0), utc(2024, time.February, 1, 0, 0, 0)); !errors.Is(err, ErrInvalid) {
		t.Errorf("Anchored ending before it starts: %v", err)
	}
}

// TestScheduledAmong: a pay-as-you-go subscription anchored on the 24th is scheduled by its own
// periods: on 26 December the period that ended on the 23rd is still closing, the one from the
// 24th is open — which calendar months (Scheduled) would not give.
func TestScheduledAmong(t *testing.T) {
	var ps []Period
	for _, r := range [][3]string{{"202612-1", "2026-11-24", "2026-12-23"}, {"202701-1", "2026-12-24", "2027-01-23"}, {"202611-1", "2026-10-24", "2026-11-23"}} {
		first, _ := time.Parse(time.DateOnly, r[1])
		last, _ := time.Parse(time.DateOnly, r[2])
		p, err := Anchored(r[0], first, last)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	for _, tt := range []struct {
		now  time.Time
		want string
	}{
		{utc(2026, time.December, 26, 9, 0, 0), "202612-1,202701-1"},
		{utc(2026, time.December, 29, 9, 0, 0), "202701-1"},
		{utc(2026, time.December, 10, 9, 0, 0), "202612-1"},
	} {
		if got := names(ScheduledAmong(tt.now, 5, ps)); got != tt.want {
			t.Errorf("ScheduledAmong(%s) = %s, want %s", tt.now.Format(time.DateOnly), got, tt.want)
		}
	}
}
