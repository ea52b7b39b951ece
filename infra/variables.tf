# ---------------------------------------------------------------------------------------
# Deployment
# ---------------------------------------------------------------------------------------

variable "environment_name" {
  description = "Short name of this deployment (azd passes AZURE_ENV_NAME). Used in resource names and the azd-env-name tag."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,18}[a-z0-9]$", var.environment_name))
    error_message = "environment_name must be 2-20 characters: lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "location" {
  description = "Azure region for all resources, e.g. westeurope. Flex Consumption is available in a subset of regions (`az functionapp list-flexconsumption-locations`)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]+$", var.location))
    error_message = "location must be a region name such as westeurope (lowercase, no spaces)."
  }
}

variable "subscription_id" {
  description = "Subscription to deploy into. null: ARM_SUBSCRIPTION_ID or the Azure CLI's current subscription."
  type        = string
  default     = null

  validation {
    condition     = var.subscription_id == null || can(regex("^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", var.subscription_id))
    error_message = "subscription_id must be a subscription GUID."
  }
}

variable "resource_group_name" {
  description = "Resource group name. null: rg-<environment_name>. With create_resource_group = false it must name an existing group."
  type        = string
  default     = null

  validation {
    condition     = var.resource_group_name == null || can(regex("^[-\\w._()]{1,89}[-\\w_()]$", var.resource_group_name))
    error_message = "resource_group_name must be 1-90 characters of letters, digits, '-', '_', '.', '(' or ')', not ending with '.'."
  }
}

variable "create_resource_group" {
  description = "Create the resource group (true) or deploy into an existing one named by resource_group_name (false)."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "azd_service_name" {
  description = "Value of the azd-service-name tag on the function app; must match the service name in azure.yaml."
  type        = string
  default     = "usage-export"
}

# ---------------------------------------------------------------------------------------
# Hosting plan
# ---------------------------------------------------------------------------------------

variable "hosting_plan" {
  description = "flex (Flex Consumption, default), consumption (classic Linux Consumption, Y1: 10-minute function timeout) or premium (Elastic Premium)."
  type        = string
  default     = "flex"

  validation {
    condition     = contains(["flex", "consumption", "premium"], var.hosting_plan)
    error_message = "hosting_plan must be one of flex, consumption, premium."
  }
}

variable "function_app_name" {
  description = "Function app name (globally unique host name). null: func-<environment_name>-<token>."
  type        = string
  default     = null

  validation {
    condition     = var.function_app_name == null || can(regex("^[a-z0-9][a-z0-9-]{0,30}[a-z0-9]$", var.function_app_name))
    error_message = "function_app_name must be 2-32 characters of lowercase letters, digits and hyphens (32 keeps the host id unique)."
  }
}

variable "function_timeout" {
  description = "Function timeout ([d.]hh:mm:ss), set as AzureFunctionsJobHost__functionTimeout (overrides host.json). null: 00:30:00 on flex and premium, 00:10:00 (the maximum) on consumption. At most 01:00:00, the grace a running execution gets on scale-in; a partition cut off by the timeout resumes from its checkpoint on the message's next delivery."
  type        = string
  default     = null

  validation {
    condition     = var.function_timeout == null || can(regex("^([0-9]+\\.)?[0-9]{2}:[0-5][0-9]:[0-5][0-9]$", var.function_timeout))
    error_message = "function_timeout must look like 02:00:00 or 1.00:00:00."
  }
}

variable "flex_instance_memory_mb" {
  description = "Flex Consumption instance memory in MB."
  type        = number
  default     = 2048

  validation {
    condition     = contains([512, 2048, 4096], var.flex_instance_memory_mb)
    error_message = "flex_instance_memory_mb must be 512, 2048 or 4096."
  }
}

variable "flex_maximum_instance_count" {
  description = "Flex Consumption scale-out limit (each function group: the queue worker scales by queue length / batchSize). Each worker instance runs up to 6 partitions at once (host.json batchSize 4 + newBatchThreshold 2); all instances share the per-scope and per-tenant API budgets through the storage account, so more instances than the budget can feed only wait. 4 instances run 24 partitions at once."
  type        = number
  default     = 4

  validation {
    condition     = var.flex_maximum_instance_count >= 1 && var.flex_maximum_instance_count <= 1000 && floor(var.flex_maximum_instance_count) == var.flex_maximum_instance_count
    error_message = "flex_maximum_instance_count must be an integer from 1 to 1000."
  }
}

variable "premium_sku" {
  description = "Elastic Premium plan size when hosting_plan = premium."
  type        = string
  default     = "EP1"

  validation {
    condition     = contains(["EP1", "EP2", "EP3"], var.premium_sku)
    error_message = "premium_sku must be EP1, EP2 or EP3."
  }
}

variable "package_blob_name" {
  description = "consumption/premium only: name of the app zip in the host account's releases container, run from there (WEBSITE_RUN_FROM_PACKAGE) with the managed identity."
  type        = string
  default     = "usage-export.zip"

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9._/-]{0,254}$", var.package_blob_name))
    error_message = "package_blob_name must be a blob name of letters, digits, '.', '_', '-' or '/'."
  }
}

variable "strip_provider_injected_settings" {
  description = "flex only: after each change of the app, delete the AzureWebJobsStorage / DEPLOYMENT_STORAGE_CONNECTION_STRING settings that the azurerm provider injects even with identity-based storage (they hold a key-less connection string that breaks the host). Needs the Azure CLI, signed in. See docs/deployment.md."
  type        = bool
  default     = true
}

# ---------------------------------------------------------------------------------------
# Storage
# ---------------------------------------------------------------------------------------

variable "host_storage_account_name" {
  description = "Name of the storage account for the Functions host (AzureWebJobsStorage) and the deployment package. null: generated."
  type        = string
  default     = null

  validation {
    condition     = var.host_storage_account_name == null || can(regex("^[a-z0-9]{3,24}$", var.host_storage_account_name))
    error_message = "host_storage_account_name must be 3-24 lowercase letters and digits."
  }
}

variable "separate_export_storage" {
  description = "Put the export container in its own storage account (true, default) or in the host account (false). Separate keeps the export data out of reach of the host's Blob Data Owner grant's blast radius and lets the data account have its own replication and lifecycle."
  type        = bool
  default     = true
}

variable "export_storage_account_name" {
  description = "Name of the export storage account when separate_export_storage = true. null: generated."
  type        = string
  default     = null

  validation {
    condition     = var.export_storage_account_name == null || can(regex("^[a-z0-9]{3,24}$", var.export_storage_account_name))
    error_message = "export_storage_account_name must be 3-24 lowercase letters and digits."
  }
}

variable "storage_replication_type" {
  description = "Replication of the storage accounts."
  type        = string
  default     = "LRS"

  validation {
    condition     = contains(["LRS", "ZRS", "GRS", "RAGRS", "GZRS", "RAGZRS"], var.storage_replication_type)
    error_message = "storage_replication_type must be one of LRS, ZRS, GRS, RAGRS, GZRS, RAGZRS."
  }
}

variable "grant_host_table_access" {
  description = "Also grant Storage Table Data Contributor on the host account. The host only needs Table storage for its diagnostic events; timers and HTTP triggers use blobs alone."
  type        = bool
  default     = false
}

variable "old_runs_retention_days" {
  description = "Lifecycle rule on the export account: delete blobs under old_runs_prefix (unfinished or held runs) this many days after their last change. 0: no rule."
  type        = number
  default     = 30

  validation {
    condition     = var.old_runs_retention_days >= 0 && var.old_runs_retention_days <= 99999 && floor(var.old_runs_retention_days) == var.old_runs_retention_days
    error_message = "old_runs_retention_days must be an integer from 0 to 99999."
  }
}

variable "old_runs_prefix" {
  description = "Blob name prefix inside the export container that holds run folders. null: \"<export_prefix>/_control/runs/\" (or \"_control/runs/\" with an empty prefix)."
  type        = string
  default     = null

  validation {
    condition     = var.old_runs_prefix == null || can(regex("^[^/].*/$", var.old_runs_prefix))
    error_message = "old_runs_prefix must not start with '/' and must end with '/'."
  }
}

# ---------------------------------------------------------------------------------------
# Billing access
# ---------------------------------------------------------------------------------------

variable "assign_cost_management_reader" {
  description = "Grant the identity Cost Management Reader on every subscription, resource group or management group scope in scopes. Needs Owner or User Access Administrator there. EA and MCA billing scopes are never ARM scopes: see docs/deployment.md."
  type        = bool
  default     = true
}

# ---------------------------------------------------------------------------------------
# App settings read by the handler (USAGE_EXPORT_*)
# ---------------------------------------------------------------------------------------

variable "scopes" {
  description = "Billing scopes to export (USAGE_EXPORT_SCOPES), e.g. /providers/Microsoft.Billing/billingAccounts/8608480 or /subscriptions/<id>. Also the HTTP function's allow-list."
  type        = list(string)

  validation {
    condition     = length(var.scopes) > 0
    error_message = "scopes must name at least one scope."
  }

  validation {
    condition = alltrue([for s in var.scopes : can(regex(
      "(?i)^/(subscriptions/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(/resourceGroups/[-\\w._()]+)?|providers/Microsoft\\.Management/managementGroups/[-\\w._()]+|providers/Microsoft\\.Billing/billingAccounts/[-\\w:]+(/(departments|enrollmentAccounts|billingProfiles|customers)/[-\\w:]+(/invoiceSections/[-\\w:]+)?)?)$",
    s))])
    error_message = "Each scope must be a subscription, resource group, management group, billing account, department, enrollment account, billing profile, customer or invoice section path, without a trailing slash."
  }

  validation {
    condition     = length(distinct([for s in var.scopes : lower(s)])) == length(var.scopes)
    error_message = "scopes must not repeat a scope."
  }
}

variable "costdetails_scopes" {
  description = "Subset of scopes read through the Cost Details reports API instead of usageDetails (USAGE_EXPORT_COSTDETAILS_SCOPES). Empty: none."
  type        = list(string)
  default     = []
}

variable "export_container_name" {
  description = "Blob container that receives the export (USAGE_EXPORT_CONTAINER)."
  type        = string
  default     = "usage-export"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$", var.export_container_name)) && !strcontains(var.export_container_name, "--")
    error_message = "export_container_name must be 3-63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit."
  }
}

variable "export_prefix" {
  description = "Blob name prefix of the export inside the container (USAGE_EXPORT_PREFIX). Empty: the container root."
  type        = string
  default     = "usage"

  validation {
    condition     = var.export_prefix == "" || can(regex("^[^/](.*[^/])?$", var.export_prefix))
    error_message = "export_prefix must not start or end with '/'."
  }
}

variable "schedule" {
  description = "Timer schedule (USAGE_EXPORT_SCHEDULE), NCRONTAB with six fields (seconds first), in UTC: Flex Consumption has no WEBSITE_TIME_ZONE."
  type        = string
  default     = "0 0 4 * * *"

  validation {
    condition     = can(regex("^[0-9A-Za-z*/,-]+( [0-9A-Za-z*/,-]+){5}$", var.schedule))
    error_message = "schedule must be an NCRONTAB expression with exactly six space-separated fields, e.g. \"0 0 4 * * *\"."
  }
}

variable "api_version" {
  description = "Consumption usageDetails API version (USAGE_EXPORT_API_VERSION)."
  type        = string
  default     = "2024-08-01"

  validation {
    condition     = can(regex("^[0-9]{4}-[0-9]{2}-[0-9]{2}(-preview)?$", var.api_version))
    error_message = "api_version must look like 2024-08-01 or 2023-03-01-preview."
  }
}

variable "metrics" {
  description = "Cost metrics to export (USAGE_EXPORT_METRIC): any of actualcost, amortizedcost, usage."
  type        = list(string)
  default     = ["actualcost"]

  validation {
    condition     = length(var.metrics) > 0 && alltrue([for m in var.metrics : contains(["actualcost", "amortizedcost", "usage"], m)]) && length(distinct(var.metrics)) == length(var.metrics)
    error_message = "metrics must be a non-empty list of distinct values among actualcost, amortizedcost, usage."
  }
}

variable "restatement_days" {
  description = "Days after a billing period's end during which it is still re-exported (USAGE_EXPORT_RESTATEMENT_DAYS)."
  type        = number
  default     = 5

  validation {
    condition     = var.restatement_days >= 0 && var.restatement_days <= 90 && floor(var.restatement_days) == var.restatement_days
    error_message = "restatement_days must be an integer from 0 to 90."
  }
}

variable "management_endpoint" {
  description = "Azure Resource Manager endpoint (USAGE_EXPORT_MANAGEMENT_ENDPOINT); change it only for sovereign clouds."
  type        = string
  default     = "https://management.azure.com"

  validation {
    condition     = can(regex("^https://[a-z0-9.-]+(:[0-9]+)?$", var.management_endpoint))
    error_message = "management_endpoint must be an https:// origin without a path or trailing slash."
  }
}

variable "gzip" {
  description = "Write gzip-compressed parts (USAGE_EXPORT_GZIP)."
  type        = bool
  default     = true
}

variable "part_days" {
  description = "Usage days per part blob (USAGE_EXPORT_PART_DAYS)."
  type        = number
  default     = 1

  validation {
    condition     = var.part_days >= 1 && var.part_days <= 31 && floor(var.part_days) == var.part_days
    error_message = "part_days must be an integer from 1 to 31."
  }
}

variable "rate_per_scope" {
  description = "Request budget per scope per minute (USAGE_EXPORT_RATE_PER_SCOPE): kind=n,… and/or one n for every other kind. Empty: the limits observed per scope kind (subscription 10, billing account/profile/customer 6, department/enrollment account/management group 2)."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^([A-Za-z]+=[0-9]+|[0-9]+)?(,([A-Za-z]+=[0-9]+|[0-9]+))*$", var.rate_per_scope))
    error_message = "rate_per_scope must be a comma-separated list of kind=calls and at most one bare number of calls."
  }
}

variable "rate_per_tenant" {
  description = "Request budget per tenant per minute (USAGE_EXPORT_RATE_PER_TENANT)."
  type        = number
  default     = 200

  validation {
    condition     = var.rate_per_tenant > 0 && var.rate_per_tenant <= 10000
    error_message = "rate_per_tenant must be greater than 0 and at most 10000."
  }
}

variable "concurrency" {
  description = "Chunks (usage days) fetched at once (USAGE_EXPORT_CONCURRENCY); the rate budget decides the call rate."
  type        = number
  default     = 4

  validation {
    condition     = var.concurrency >= 1 && var.concurrency <= 64
    error_message = "concurrency must be from 1 to 64."
  }
}

variable "lease_seconds" {
  description = "Partition lease in seconds (USAGE_EXPORT_LEASE_SECONDS): how long a writer that died blocks its partition."
  type        = number
  default     = 60

  validation {
    condition     = var.lease_seconds >= 15 && var.lease_seconds <= 60
    error_message = "lease_seconds must be from 15 to 60 (the blob lease range)."
  }
}

variable "max_months" {
  description = "Longest month range one on-demand export may ask for (USAGE_EXPORT_MAX_MONTHS)."
  type        = number
  default     = 36

  validation {
    condition     = var.max_months >= 1 && var.max_months <= 120
    error_message = "max_months must be from 1 to 120."
  }
}

variable "drop_guard" {
  description = "Hold a closed period's re-export whose row count falls below this fraction of the published one (USAGE_EXPORT_DROP_GUARD). 0 disables the guard."
  type        = number
  default     = 0.5

  validation {
    condition     = var.drop_guard >= 0 && var.drop_guard <= 1
    error_message = "drop_guard must be between 0 and 1."
  }
}

variable "row_key" {
  description = "Add a stable row key to each exported record (USAGE_EXPORT_ROW_KEY)."
  type        = bool
  default     = false
}

variable "focus" {
  description = "Also build the FOCUS 1.2 dataset from the actual and amortized partitions; turns on both metrics (USAGE_EXPORT_FOCUS)."
  type        = bool
  default     = false
}

variable "log_level" {
  description = "Handler log level (USAGE_EXPORT_LOG_LEVEL)."
  type        = string
  default     = "info"

  validation {
    condition     = contains(["debug", "info", "warn", "error"], var.log_level)
    error_message = "log_level must be one of debug, info, warn, error."
  }
}

variable "expand" {
  description = "$expand of usageDetails requests (USAGE_EXPORT_EXPAND). Empty: meter details and additional info; none: no expansion."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^[A-Za-z,/]*$", var.expand))
    error_message = "expand must be a comma-separated list of property names (letters and '/' only), or none."
  }
}

variable "http_function_route" {
  description = "Route of the HTTP function, as in UsageExportHttp/function.json (the function name when it sets none); used only for the function_urls output."
  type        = string
  default     = "exports"
}

variable "log_retention_days" {
  description = "Log Analytics workspace retention in days."
  type        = number
  default     = 30

  validation {
    condition     = var.log_retention_days >= 30 && var.log_retention_days <= 730
    error_message = "log_retention_days must be from 30 to 730."
  }
}

variable "work_queue_name" {
  description = "Name of the work queue (one message per partition) on the host storage account; its poison queue is <name>-poison. Set as USAGE_EXPORT_QUEUE."
  type        = string
  default     = "usage-export-partitions"

  validation {
    condition     = length(var.work_queue_name) >= 3 && length(var.work_queue_name) <= 56 && can(regex("^[a-z0-9]+(-[a-z0-9]+)*$", var.work_queue_name))
    error_message = "work_queue_name must be 3-56 lower-case letters, digits and single hyphens (room is left for -poison)."
  }
}
