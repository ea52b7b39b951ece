package consumption

import "github.com/usage-export/usage-export/internal/retryhint"

// HeaderConsumptionRetryAfter is the Consumption API's throttling hint, in seconds. The client's
// pipeline maps it (and every other hint) onto Retry-After with retryhint.NewPolicy.
const HeaderConsumptionRetryAfter = retryhint.HeaderConsumptionRetryAfter
