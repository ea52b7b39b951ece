package sandbox

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/usage-export/usage-export/internal/scope"
)

// The Billing Periods API:
//
//	GET /subscriptions/{id}/providers/Microsoft.Billing/billingPeriods?api-version=2018-03-01-preview
//
// lists the subscription's billing periods, newest first, from the current one back to
// FirstMonth: {"value":[{"id","name","type","properties":{"billingPeriodStartDate",
// "billingPeriodEndDate","invoiceIds"}}]}. Calendar months for EA and MCA subscriptions (named
// YYYYMM); the sign-up-anchored periods of pay-as-you-go subscriptions (named YYYYMM-1).

// billingPeriodsSuffix ends the Billing Periods API's path (lower case).
const billingPeriodsSuffix = "/providers/microsoft.billing/billingperiods"

// BillingPeriodsAPIVersions are the api-versions the sandbox's Billing Periods API accepts.
var BillingPeriodsAPIVersions = []string{"2017-04-24-preview", "2018-03-01-preview"}

type billingPeriodJSON struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Type       string `json:"type"`
	Properties struct {
		Start      string   `json:"billingPeriodStartDate"`
		End        string   `json:"billingPeriodEndDate"`
		InvoiceIDs []string `json:"invoiceIds"`
	} `json:"properties"`
}

func (s *Server) serveBillingPeriods(w http.ResponseWriter, r *http.Request, scopePath string) {
	known := func(v string) bool { return slices.Contains(BillingPeriodsAPIVersions, v) }
	if !checkVersion(w, r.URL.Query().Get("api-version"), known, strings.Join(BillingPeriodsAPIVersions, ", ")) {
		return
	}
	sc, err := scope.Parse(scopePath)
	if err != nil || sc.Kind != scope.Subscription {
		writeError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("No HTTP resource was found that matches the request URI '%s'.", r.URL.Path))
		return
	}
	subs, err := s.w.resolve(sc)
	if err != nil {
		writeError(w, http.StatusNotFound, "SubscriptionNotFound", fmt.Sprintf("The subscription '%s' could not be found.", sc.IDs[0]))
		return
	}
	sub := subs[0]
	today := dayOf(s.o.Now())
	var out []billingPeriodJSON
	for day := today; !day.Before(s.firstMonth.Start()); {
		first, last, name := sub.periodOf(day)
		var bp billingPeriodJSON
		bp.ID = "/subscriptions/" + sub.guid + "/providers/Microsoft.Billing/billingPeriods/" + name
		bp.Name, bp.Type = name, "Microsoft.Billing/billingPeriods"
		bp.Properties.Start, bp.Properties.End = first.Format(time.DateOnly), last.Format(time.DateOnly)
		bp.Properties.InvoiceIDs = []string{}
		if last.Before(today) {
			bp.Properties.InvoiceIDs = []string{"/subscriptions/" + sub.guid + "/providers/Microsoft.Billing/invoices/" + name}
		}
		out = append(out, bp)
		day = first.AddDate(0, 0, -1)
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
}
