package mgmt_test

import (
	"fmt"

	"github.com/usage-export/usage-export/internal/mgmt"
)

func ExampleRedactURL() {
	fmt.Println(mgmt.RedactURL("https://management.azure.com/subscriptions/x/providers/Microsoft.Consumption/usageDetails?api-version=2024-08-01&sessiontoken=21:32512334&$skiptoken=327C&skiptokenver=v1"))
	// Output:
	// https://management.azure.com/subscriptions/x/providers/Microsoft.Consumption/usageDetails?api-version=2024-08-01&sessiontoken=REDACTED&$skiptoken=REDACTED&skiptokenver=v1
}
