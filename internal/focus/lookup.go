package focus

import "strings"

// The lookups Microsoft's toolkit keeps as open-data files (Regions, Services), reduced to what
// this dataset needs. A value not found is kept as the cost details give it.

// regionAliases maps a normalised location (lower case, no spaces) — ARM name, legacy EA name
// (`USEast`) or display name (`US East`, `East US`) — to the ARM region name.
var regionAliases = map[string]string{
	"eastus": "eastus", "useast": "eastus", "eastus2": "eastus2", "useast2": "eastus2",
	"westus": "westus", "uswest": "westus", "westus2": "westus2", "uswest2": "westus2", "westus3": "westus3", "uswest3": "westus3",
	"centralus": "centralus", "uscentral": "centralus", "northcentralus": "northcentralus", "usnorthcentral": "northcentralus",
	"southcentralus": "southcentralus", "ussouthcentral": "southcentralus", "westcentralus": "westcentralus",
	"westeurope": "westeurope", "euwest": "westeurope", "northeurope": "northeurope", "eunorth": "northeurope",
	"uksouth": "uksouth", "ukwest": "ukwest", "francecentral": "francecentral", "frcentral": "francecentral",
	"germanywestcentral": "germanywestcentral", "dewestcentral": "germanywestcentral", "swedencentral": "swedencentral",
	"switzerlandnorth": "switzerlandnorth", "chnorth": "switzerlandnorth", "norwayeast": "norwayeast", "noeast": "norwayeast",
	"japaneast": "japaneast", "jaeast": "japaneast", "japanwest": "japanwest", "jawest": "japanwest",
	"southeastasia": "southeastasia", "apsoutheast": "southeastasia", "eastasia": "eastasia", "apeast": "eastasia",
	"australiaeast": "australiaeast", "aueast": "australiaeast", "australiasoutheast": "australiasoutheast", "ausoutheast": "australiasoutheast",
	"canadacentral": "canadacentral", "cacentral": "canadacentral", "canadaeast": "canadaeast", "caeast": "canadaeast",
	"brazilsouth": "brazilsouth", "brsouth": "brazilsouth", "centralindia": "centralindia", "incentral": "centralindia",
	"koreacentral": "koreacentral", "krcentral": "koreacentral", "southafricanorth": "southafricanorth", "zanorth": "southafricanorth",
	"uaenorth": "uaenorth", "aenorth": "uaenorth",
}

// regionNames are the display names of the ARM regions above.
var regionNames = map[string]string{
	"eastus": "East US", "eastus2": "East US 2", "westus": "West US", "westus2": "West US 2", "westus3": "West US 3",
	"centralus": "Central US", "northcentralus": "North Central US", "southcentralus": "South Central US",
	"westcentralus": "West Central US", "westeurope": "West Europe", "northeurope": "North Europe", "uksouth": "UK South",
	"ukwest": "UK West", "francecentral": "France Central", "germanywestcentral": "Germany West Central",
	"swedencentral": "Sweden Central", "switzerlandnorth": "Switzerland North", "norwayeast": "Norway East",
	"japaneast": "Japan East", "japanwest": "Japan West", "southeastasia": "Southeast Asia", "eastasia": "East Asia",
	"australiaeast": "Australia East", "australiasoutheast": "Australia Southeast", "canadacentral": "Canada Central",
	"canadaeast": "Canada East", "brazilsouth": "Brazil South", "centralindia": "Central India",
	"koreacentral": "Korea Central", "southafricanorth": "South Africa North", "uaenorth": "UAE North",
}

// region returns RegionId and RegionName of a cost-details location; both "" for no location
// (unused commitments carry `Unassigned`, purchases nothing).
func region(loc string) (id, name string) {
	n := norm(loc)
	switch n {
	case "", "unassigned", "unknown", "global", "allregions":
		return "", ""
	}
	if arm, ok := regionAliases[n]; ok {
		return arm, regionNames[arm]
	}
	return n, loc
}

// serviceCategories are FOCUS 1.2's ServiceCategory values. Azure's ServiceFamily values are
// mostly the same names.
var serviceCategories = []string{
	"AI and Machine Learning", "Analytics", "Business Applications", "Compute", "Databases", "Developer Tools",
	"Multicloud", "Identity", "Integration", "Internet of Things", "Management and Governance", "Media",
	"Migration", "Mobile", "Networking", "Security", "Storage", "Web", "Other",
}

// services maps a lower-case ARM resource type, or else a lower-case ConsumedService, to
// ServiceName and ServiceCategory.
var services = map[string][2]string{
	"microsoft.compute/virtualmachines":            {"Virtual Machines", "Compute"},
	"microsoft.compute/virtualmachinescalesets":    {"Virtual Machine Scale Sets", "Compute"},
	"microsoft.compute/disks":                      {"Managed Disks", "Storage"},
	"microsoft.storage/storageaccounts":            {"Storage Accounts", "Storage"},
	"microsoft.network/publicipaddresses":          {"Public IP Addresses", "Networking"},
	"microsoft.network/loadbalancers":              {"Load Balancer", "Networking"},
	"microsoft.network/virtualnetworks":            {"Virtual Network", "Networking"},
	"microsoft.sql/servers":                        {"Azure SQL Database", "Databases"},
	"microsoft.web/serverfarms":                    {"App Service", "Web"},
	"microsoft.web/sites":                          {"App Service", "Web"},
	"microsoft.operationalinsights/workspaces":     {"Log Analytics", "Management and Governance"},
	"microsoft.keyvault/vaults":                    {"Key Vault", "Security"},
	"microsoft.compute":                            {"Virtual Machines", "Compute"},
	"microsoft.storage":                            {"Storage Accounts", "Storage"},
	"microsoft.network":                            {"Virtual Network", "Networking"},
	"microsoft.sql":                                {"Azure SQL Database", "Databases"},
	"microsoft.web":                                {"App Service", "Web"},
	"microsoft.operationalinsights":                {"Log Analytics", "Management and Governance"},
	"microsoft.keyvault":                           {"Key Vault", "Security"},
	"microsoft.capacity":                           {"Reservations", "Other"},
	"microsoft.billingbenefits":                    {"Savings Plans", "Other"},
	"microsoft.containerservice/managedclusters":   {"Azure Kubernetes Service", "Compute"},
	"microsoft.documentdb/databaseaccounts":        {"Azure Cosmos DB", "Databases"},
	"microsoft.cognitiveservices/accounts":         {"Azure AI Services", "AI and Machine Learning"},
	"microsoft.dbforpostgresql/flexibleservers":    {"Azure Database for PostgreSQL", "Databases"},
	"microsoft.insights/components":                {"Application Insights", "Management and Governance"},
	"microsoft.containerregistry/registries":       {"Container Registry", "Compute"},
	"microsoft.cache/redis":                        {"Azure Cache for Redis", "Databases"},
	"microsoft.eventhub/namespaces":                {"Event Hubs", "Analytics"},
	"microsoft.servicebus/namespaces":              {"Service Bus", "Integration"},
	"microsoft.datafactory/factories":              {"Data Factory", "Analytics"},
	"microsoft.network/applicationgateways":        {"Application Gateway", "Networking"},
	"microsoft.network/azurefirewalls":             {"Azure Firewall", "Security"},
	"microsoft.recoveryservices/vaults":            {"Backup", "Storage"},
	"microsoft.app/containerapps":                  {"Container Apps", "Compute"},
	"microsoft.machinelearningservices/workspaces": {"Azure Machine Learning", "AI and Machine Learning"},
}

// service returns ServiceName and ServiceCategory, both never empty (FOCUS forbids null): by ARM
// type, then ConsumedService, then MeterCategory/ServiceFamily; Marketplace charges are named
// after their publisher (Microsoft's workaround for its empty ServiceName, T-CONF SvN4);
// adjustments and anything unknown get `Other`.
func service(armType, consumed, meterCategory, family, publisher string, marketplace bool, ct string) (string, string) {
	if v, ok := services[strings.ToLower(armType)]; ok {
		return v[0], v[1]
	}
	if v, ok := services[strings.ToLower(consumed)]; ok {
		return v[0], v[1]
	}
	cat := "Other"
	for _, c := range serviceCategories {
		if strings.EqualFold(c, family) {
			cat = c
		}
	}
	switch {
	case marketplace && publisher != "":
		return publisher, cat
	case meterCategory != "":
		return meterCategory, cat
	case ct == "roundingadjustment":
		return "Rounding Adjustment", "Other"
	case consumed != "":
		return consumed, cat
	}
	return "Microsoft Azure", cat
}
