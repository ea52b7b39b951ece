locals {
  # A worker invocation exports one partition and resumes from its checkpoint when it is cut
  # off, so no invocation needs long. 30 minutes stays inside what the plans guarantee a running
  # execution: 60 minutes of grace on scale-in (Flex Consumption, Premium), 10 minutes in all on
  # Consumption.
  default_function_timeout = {
    flex        = "00:30:00"
    premium     = "00:30:00"
    consumption = "00:10:00"
  }
  function_timeout = coalesce(var.function_timeout, local.default_function_timeout[var.hosting_plan])
  timeout_parts    = regex("^(?:([0-9]+)\\.)?([0-9]{2}):([0-9]{2}):([0-9]{2})$", local.function_timeout)
  function_timeout_seconds = (
    ((tonumber(coalesce(local.timeout_parts[0], "0")) * 24 + tonumber(local.timeout_parts[1])) * 60
    + tonumber(local.timeout_parts[2])) * 60 + tonumber(local.timeout_parts[3])
  )
  # The Consumption plan stops a function after 10 minutes at most; elsewhere a running
  # execution gets 60 minutes of grace on scale-in, so a longer timeout is not honoured.
  consumption_max_timeout_seconds = 600
  scale_in_grace_seconds          = 3600

  # Settings read by the handler (handler/ reads them from the environment).
  handler_settings = merge(
    {
      USAGE_EXPORT_SCOPES              = join(",", var.scopes)
      USAGE_EXPORT_STORAGE_ACCOUNT_URL = trimsuffix(local.export_account.primary_blob_endpoint, "/")
      USAGE_EXPORT_CONTAINER           = azurerm_storage_container.export.name
      USAGE_EXPORT_PREFIX              = var.export_prefix
      USAGE_EXPORT_SCHEDULE            = var.schedule
      USAGE_EXPORT_API_VERSION         = var.api_version
      USAGE_EXPORT_METRIC              = join(",", var.metrics)
      USAGE_EXPORT_RESTATEMENT_DAYS    = tostring(var.restatement_days)
      USAGE_EXPORT_MANAGEMENT_ENDPOINT = var.management_endpoint
      USAGE_EXPORT_GZIP                = tostring(var.gzip)
      USAGE_EXPORT_PART_DAYS           = tostring(var.part_days)
      USAGE_EXPORT_RATE_PER_SCOPE      = var.rate_per_scope
      USAGE_EXPORT_RATE_PER_TENANT     = tostring(var.rate_per_tenant)
      USAGE_EXPORT_CONCURRENCY         = tostring(var.concurrency)
      USAGE_EXPORT_LEASE_SECONDS       = tostring(var.lease_seconds)
      USAGE_EXPORT_MAX_MONTHS          = tostring(var.max_months)
      USAGE_EXPORT_DROP_GUARD          = tostring(var.drop_guard)
      USAGE_EXPORT_ROW_KEY             = tostring(var.row_key)
      USAGE_EXPORT_FOCUS               = tostring(var.focus)
      USAGE_EXPORT_LOG_LEVEL           = var.log_level
      USAGE_EXPORT_EXPAND              = var.expand
      # The worker's queueTrigger names its queue %USAGE_EXPORT_QUEUE%; the handler enqueues to
      # the same setting through AzureWebJobsStorage__* (the host account, identity-based).
      USAGE_EXPORT_QUEUE = azurerm_storage_queue.work.name
      AZURE_CLIENT_ID    = azurerm_user_assigned_identity.app.client_id
    },
    length(var.costdetails_scopes) > 0 ? {
      USAGE_EXPORT_COSTDETAILS_SCOPES = join(",", var.costdetails_scopes)
    } : {},
  )

  # Settings read by the Functions host. APPLICATIONINSIGHTS_CONNECTION_STRING is set
  # through site_config (the provider moves it there on read).
  host_settings = {
    AzureWebJobsStorage__credential           = "managedidentity"
    AzureWebJobsStorage__clientId             = azurerm_user_assigned_identity.app.client_id
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING = "ClientId=${azurerm_user_assigned_identity.app.client_id};Authorization=AAD"
    AzureFunctionsJobHost__functionTimeout    = local.function_timeout
  }

  # Flex Consumption. The runtime, worker, extension version and package location are
  # properties of the app here, and app settings that name them are rejected.
  flex_app_settings = merge(local.handler_settings, local.host_settings, {
    AzureWebJobsStorage__accountName = local.host_account.name
  })

  # Classic Consumption and Premium. storage_account_name + storage_uses_managed_identity
  # write AzureWebJobsStorage__accountName; use_custom_runtime writes
  # FUNCTIONS_WORKER_RUNTIME=custom; functions_extension_version writes
  # FUNCTIONS_EXTENSION_VERSION. Without an Azure Files content share (which would need a
  # shared key) a Linux app on these plans must run from a package URL.
  classic_app_settings = merge(local.handler_settings, local.host_settings, {
    WEBSITE_RUN_FROM_PACKAGE                     = local.is_flex ? "" : "${local.host_account.primary_blob_endpoint}${azurerm_storage_container.releases[0].name}/${var.package_blob_name}"
    WEBSITE_RUN_FROM_PACKAGE_BLOB_MI_RESOURCE_ID = azurerm_user_assigned_identity.app.id
  })

  costdetails_outside_scopes = [for s in var.costdetails_scopes : s if !contains([for x in var.scopes : lower(x)], lower(s))]
}

# The checks of the settings both function app variants get stand on the plan, which either
# app needs first: they fail the plan before any app is planned.
resource "azurerm_service_plan" "main" {
  name                = "asp-${var.environment_name}-${local.token}"
  resource_group_name = local.resource_group.name
  location            = var.location
  os_type             = "Linux"
  sku_name            = local.is_flex ? "FC1" : (var.hosting_plan == "consumption" ? "Y1" : var.premium_sku)
  tags                = local.tags

  lifecycle {
    precondition {
      condition     = length(local.costdetails_outside_scopes) == 0
      error_message = "costdetails_scopes must be a subset of scopes; not in scopes: ${join(", ", local.costdetails_outside_scopes)}."
    }
    precondition {
      condition     = var.hosting_plan != "consumption" || local.function_timeout_seconds <= local.consumption_max_timeout_seconds
      error_message = "function_timeout ${local.function_timeout} exceeds the Consumption plan's limit of 00:10:00."
    }
    precondition {
      condition     = local.function_timeout_seconds <= local.scale_in_grace_seconds
      error_message = "function_timeout ${local.function_timeout} exceeds the 60 minutes ${local.is_flex ? "Flex Consumption" : "the platform"} grants a running execution on scale-in."
    }
  }
}

resource "azurerm_function_app_flex_consumption" "main" {
  count = local.is_flex ? 1 : 0

  name                = local.function_app_name
  resource_group_name = local.resource_group.name
  location            = var.location
  service_plan_id     = azurerm_service_plan.main.id

  runtime_name           = "custom"
  runtime_version        = "1.0"
  instance_memory_in_mb  = var.flex_instance_memory_mb
  maximum_instance_count = var.flex_maximum_instance_count

  storage_container_type            = "blobContainer"
  storage_container_endpoint        = "${local.host_account.primary_blob_endpoint}${azurerm_storage_container.deployment[0].name}"
  storage_authentication_type       = "UserAssignedIdentity"
  storage_user_assigned_identity_id = azurerm_user_assigned_identity.app.id

  https_only                                     = true
  webdeploy_publish_basic_authentication_enabled = false

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.app.id]
  }

  site_config {
    application_insights_connection_string = azurerm_application_insights.main.connection_string
    minimum_tls_version                    = "1.2"
    scm_minimum_tls_version                = "1.2"
  }

  app_settings = local.flex_app_settings

  tags = merge(local.tags, { "azd-service-name" = var.azd_service_name })

  depends_on = [
    azurerm_role_assignment.app,
    azurerm_storage_queue.poison,
  ]
}

resource "azurerm_linux_function_app" "main" {
  count = local.is_flex ? 0 : 1

  name                = local.function_app_name
  resource_group_name = local.resource_group.name
  location            = var.location
  service_plan_id     = azurerm_service_plan.main.id

  functions_extension_version   = "~4"
  storage_account_name          = local.host_account.name
  storage_uses_managed_identity = true

  https_only                                     = true
  webdeploy_publish_basic_authentication_enabled = false
  ftp_publish_basic_authentication_enabled       = false

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.app.id]
  }

  site_config {
    application_insights_connection_string = azurerm_application_insights.main.connection_string
    minimum_tls_version                    = "1.2"
    scm_minimum_tls_version                = "1.2"
    ftps_state                             = "Disabled"

    application_stack {
      use_custom_runtime = true
    }
  }

  app_settings = local.classic_app_settings

  tags = merge(local.tags, { "azd-service-name" = var.azd_service_name })

  depends_on = [
    azurerm_role_assignment.app,
    azurerm_storage_queue.poison,
  ]
}

# azurerm 5.2 still writes AzureWebJobsStorage (and, on updates,
# DEPLOYMENT_STORAGE_CONNECTION_STRING) as a connection string with an empty key even
# when both host and deployment storage use the managed identity
# (hashicorp/terraform-provider-azurerm#33211, #29693). The host prefers that value over the
# AzureWebJobsStorage__* identity settings and fails. The provider re-injects them on every
# update of the app, not only when app_settings change, and hides them on read (no drift
# shows). So the clean-up runs after EVERY apply: plantimestamp() is new at each plan, which
# replaces this resource, and its provisioner runs after the app resource has been applied.
# infra_test.go (TestStripRunsOnEveryApply) fails when that would no longer hold.
resource "terraform_data" "strip_injected_settings" {
  count = local.is_flex && var.strip_provider_injected_settings ? 1 : 0

  triggers_replace = [
    plantimestamp(),
    azurerm_function_app_flex_consumption.main[0].id,
  ]

  provisioner "local-exec" {
    command = "az functionapp config appsettings delete --ids \"$APP_ID\" --setting-names AzureWebJobsStorage DEPLOYMENT_STORAGE_CONNECTION_STRING --output none"
    environment = {
      APP_ID = azurerm_function_app_flex_consumption.main[0].id
    }
  }

  depends_on = [azurerm_function_app_flex_consumption.main]
}
