package config

import (
	"cmp"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/usage-export/usage-export/internal/consumption"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/metric"
	"github.com/usage-export/usage-export/internal/ratelimit"
	"github.com/usage-export/usage-export/internal/scope"
)

// The parsers of Settings' rows: each checks one value and stores it in the Config. Their
// errors name the value, not the setting (Load adds the setting's name).

// text stores the value as it is.
func text(field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error {
		*field(c) = v
		return nil
	}
}

// checked stores a value check accepts.
func checked(check func(string) error, field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error {
		if err := check(v); err != nil {
			return err
		}
		*field(c) = v
		return nil
	}
}

// oneOfText stores a value of list; format gets the value and the list.
func oneOfText(list []string, format string, field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error {
		if !slices.Contains(list, v) {
			return fmt.Errorf(format, v, strings.Join(list, ", "))
		}
		*field(c) = v
		return nil
	}
}

// boolean stores true or false (strconv.ParseBool's spellings).
func boolean(field func(*Config) *bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not true or false", v)
		}
		*field(c) = b
		return nil
	}
}

// whole stores a whole number from lo to hi.
func whole(lo, hi int, field func(*Config) *int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("%q is not a whole number from %d to %d", v, lo, hi)
		}
		*field(c) = n
		return nil
	}
}

// scopeList stores a list of scopes (ParseScopes).
func scopeList(field func(*Config) *[]scope.Scope) func(*Config, string) error {
	return func(c *Config, v string) error {
		scs, err := ParseScopes(v)
		*field(c) = scs
		return err
	}
}

func parseSource(c *Config, v string) error {
	c.Source = manifest.Source(v)
	if !slices.Contains(Sources, c.Source) {
		return fmt.Errorf("%q is not a source; use one of %s", v, strings.Join(names(Sources), ", "))
	}
	return nil
}

func parseAccountURL(c *Config, v string) error {
	if v == "" {
		return nil
	}
	if u, err := url.Parse(v); err != nil || u.Host == "" || (u.Scheme != "https" && !isLoopback(u.Hostname())) {
		return fmt.Errorf("%q is not an https account URL like https://<account>.blob.core.windows.net", v)
	}
	c.StorageAccountURL = v
	return nil
}

func parsePrefix(c *Config, v string) error {
	c.Prefix = strings.Trim(v, "/")
	return ValidatePrefix(c.Prefix)
}

func parseSchedule(c *Config, v string) error {
	if len(strings.Fields(v)) != 6 {
		return fmt.Errorf("%q is not a six-field NCRONTAB expression ({second} {minute} {hour} {day} {month} {day-of-week})", v)
	}
	c.Schedule = v
	return nil
}

// parseMetrics stores the metrics of a comma-separated list, each once, in lower case.
func parseMetrics(c *Config, v string) error {
	all := metric.Strings(metric.All)
	c.Metrics = nil
	var errs []error
	for _, m := range splitList(v) {
		m = strings.ToLower(m)
		switch {
		case !slices.Contains(all, m) && Suggest(m, all) != "":
			errs = append(errs, fmt.Errorf("%q is not one of %s; did you mean %s?", m, strings.Join(all, ", "), Suggest(m, all)))
		case !slices.Contains(all, m):
			errs = append(errs, fmt.Errorf("%q is not one of %s", m, strings.Join(all, ", ")))
		case !slices.Contains(c.Metrics, metric.Metric(m)):
			c.Metrics = append(c.Metrics, metric.Metric(m))
		}
	}
	if len(c.Metrics) == 0 {
		c.Metrics = []metric.Metric{DefaultMetric}
	}
	return joinSameSetting(errs)
}

// joinSameSetting joins problems of one value into one error, "; "-separated (Load names the
// setting once).
func joinSameSetting(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return fmt.Errorf("%s", strings.Join(msgs, "; "))
}

func parseEndpoint(c *Config, v string) error {
	c.ManagementEndpoint = strings.TrimSuffix(v, "/")
	return ValidateEndpoint(c.ManagementEndpoint)
}

func parseRates(c *Config, v string) error {
	if v == "" {
		return nil
	}
	var err error
	c.RatePerScope, c.RatePerKind, err = ratelimit.ParseRates(v)
	return err
}

func parseRateWindow(c *Config, v string) error {
	d, err := time.ParseDuration(v)
	if err != nil || d < minRateWindow || d > time.Hour {
		return fmt.Errorf("%q is not a duration from %s to 1h", v, minRateWindow)
	}
	c.RateWindow = d
	return nil
}

func parseDropGuard(c *Config, v string) error {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 || f >= 1 {
		return fmt.Errorf("%q is not a fraction between 0 and 1 (exclusive)", v)
	}
	c.DropGuard = f
	return nil
}

func parseExpand(c *Config, v string) error {
	c.Expand = v
	if strings.EqualFold(v, consumption.ExpandNone) {
		c.Expand = consumption.ExpandNone
	}
	return nil
}

func parseLogLevel(c *Config, v string) error {
	c.LogLevel = strings.ToLower(v)
	if !slices.Contains(LogLevels, c.LogLevel) {
		return fmt.Errorf("%q is not one of %s", c.LogLevel, strings.Join(LogLevels, ", "))
	}
	return nil
}

// codeList formats values for the README: `a`, `b`, `c`.
func codeList(vs []string) string {
	return "`" + strings.Join(vs, "`, `") + "`"
}

// perKindDoc is the README's default of EnvRatePerScope: ratelimit.DefaultPerKind, the most
// generous kinds first.
func perKindDoc() string {
	kinds := slices.SortedFunc(maps.Keys(ratelimit.DefaultPerKind), func(a, b scope.Kind) int {
		return cmp.Or(ratelimit.DefaultPerKind[b]-ratelimit.DefaultPerKind[a], cmp.Compare(a, b))
	})
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%s=%d", k, ratelimit.DefaultPerKind[k])
	}
	return codeList(parts)
}

// durationText spells d as the setting takes it: "1m" rather than time.Duration's "1m0s".
func durationText(d time.Duration) string {
	s := d.String()
	s = strings.TrimSuffix(s, "0s")
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
