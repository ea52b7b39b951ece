// Package mgmt is the management-endpoint (Azure Resource Manager) pipeline both billing clients
// share: endpoint checks, the token host guard, no redirects, retry defaults, the idle watchdog,
// ARM errors, the diagnosis of failed calls and the bearer-token credentials (StaticToken, TokenFile).
package mgmt

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// DefaultEndpoint is the Azure Resource Manager endpoint of the public cloud.
const DefaultEndpoint = "https://management.azure.com"

// HeaderRequestID is the response header ARM uses for the request id support asks for.
const HeaderRequestID = "x-ms-request-id"

// Sentinel errors, matched with errors.Is.
var (
	// ErrForeignHost means a request (a nextLink, a polling Location, …) pointed at a scheme or
	// host other than the configured endpoint; it was not sent.
	ErrForeignHost = errors.New("not the configured endpoint")
	// ErrRedirect means the server answered with a redirect, which is never followed.
	ErrRedirect = errors.New("redirect refused")
	// ErrIdleTimeout means the server sent nothing for the client's body idle timeout.
	ErrIdleTimeout = errors.New("idle timeout")
)

// Origin is the scheme and host:port a URL is sent to, normalised for comparison: lower case,
// default port removed, IPv6 literals in brackets. Two URLs go to the same place exactly when
// their Origins are equal (==).
type Origin struct {
	scheme string
	host   string // with the port, if any
}

// String returns scheme://host[:port], the normalised endpoint.
func (o Origin) String() string { return o.scheme + "://" + o.host }

// OriginOf returns the normalised origin of u.
func OriginOf(u *url.URL) Origin {
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	if strings.Contains(host, ":") { // IPv6 literal
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return Origin{scheme: scheme, host: host}
}

// ParseEndpoint validates an ARM endpoint (DefaultEndpoint when s is empty) and returns its
// origin; Origin.String is the normalised endpoint (scheme://host[:port], lower case, no
// trailing slash). An endpoint is https with a host and nothing after it; plain http is
// accepted only on a loopback address, for a local sandbox.
func ParseEndpoint(s string) (Origin, error) {
	if s == "" {
		s = DefaultEndpoint
	}
	fail := func(why string) (Origin, error) {
		return Origin{}, fmt.Errorf("endpoint %q: %s (want https://host[:port], or http://127.0.0.1:port for a local sandbox)", s, why)
	}
	u, err := url.Parse(s)
	if err != nil {
		return fail("not a URL")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fail("scheme must be https")
	case u.Opaque != "" || u.Host == "":
		return fail("no host")
	case u.User != nil:
		return fail("must not contain user information")
	case u.Path != "" && u.Path != "/":
		return fail("must not contain a path")
	case u.RawQuery != "" || u.ForceQuery:
		return fail("must not contain a query")
	case u.Fragment != "":
		return fail("must not contain a fragment")
	case u.Hostname() == "":
		return fail("no host")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fail("invalid port")
		}
	}
	org := OriginOf(u)
	if org.scheme == "http" && !IsLoopback(u.Hostname()) {
		return fail("plain http is allowed only on a loopback address")
	}
	return org, nil
}

// IsLoopback reports whether host is localhost or a loopback IP literal (127.0.0.0/8, ::1).
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// TokenScope is the OAuth scope for an ARM endpoint: the endpoint followed by "/.default"
// (https://management.azure.com/.default, and likewise for sovereign clouds and a sandbox).
func TokenScope(endpoint Origin) string { return endpoint.String() + "/.default" }
