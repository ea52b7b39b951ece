# Renders the app settings through Terraform with a mocked azurerm provider (no Azure
# calls, no credentials) and checks them: every setting the handler and the host need is
# set, with the identity's values, and no setting Flex Consumption forbids is set.
# Run by `make infra-validate` (terraform test).

mock_provider "azurerm" {
  mock_data "azurerm_client_config" {
    defaults = {
      subscription_id = "00000000-0000-0000-0000-000000000001"
      tenant_id       = "00000000-0000-0000-0000-000000000002"
    }
  }

  mock_resource "azurerm_user_assigned_identity" {
    defaults = {
      id           = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-ci/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-ci"
      client_id    = "11111111-1111-1111-1111-111111111111"
      principal_id = "22222222-2222-2222-2222-222222222222"
      tenant_id    = "00000000-0000-0000-0000-000000000002"
    }
  }

  # Mocked ids must parse as ids: the provider validates arguments that take them.
  mock_resource "azurerm_storage_account" {
    defaults = {
      id                    = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-ci/providers/Microsoft.Storage/storageAccounts/stmock"
      primary_blob_endpoint = "https://stmock.blob.core.windows.net/"
    }
  }

  mock_resource "azurerm_service_plan" {
    defaults = {
      id = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-ci/providers/Microsoft.Web/serverFarms/asp-ci"
    }
  }

  mock_resource "azurerm_log_analytics_workspace" {
    defaults = {
      id = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-ci/providers/Microsoft.OperationalInsights/workspaces/log-ci"
    }
  }

  mock_resource "azurerm_storage_container" {
    defaults = {
      id = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-ci/providers/Microsoft.Storage/storageAccounts/stmock/blobServices/default/containers/usage-export"
    }
  }

  mock_resource "azurerm_application_insights" {
    defaults = {
      id                = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-ci/providers/Microsoft.Insights/components/appi-ci"
      connection_string = "InstrumentationKey=33333333-3333-3333-3333-333333333333;IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/"
    }
  }
}

variables {
  environment_name = "ci"
  location         = "westeurope"
  scopes = [
    "/providers/Microsoft.Billing/billingAccounts/8608480",
    "/subscriptions/00000000-0000-0000-0000-000000000001",
  ]
}

run "flex_settings" {
  command = apply

  variables {
    # The clean-up runs the Azure CLI; it is planned in flex_cleanup_planned below.
    strip_provider_injected_settings = false
  }

  assert {
    condition = length(setsubtract([
      "USAGE_EXPORT_SCOPES", "USAGE_EXPORT_STORAGE_ACCOUNT_URL", "AZURE_CLIENT_ID",
      "USAGE_EXPORT_CONTAINER", "USAGE_EXPORT_PREFIX", "USAGE_EXPORT_SCHEDULE", "USAGE_EXPORT_API_VERSION",
      "USAGE_EXPORT_METRIC", "USAGE_EXPORT_RESTATEMENT_DAYS", "USAGE_EXPORT_MANAGEMENT_ENDPOINT",
      "USAGE_EXPORT_GZIP", "USAGE_EXPORT_PART_DAYS", "USAGE_EXPORT_RATE_PER_SCOPE", "USAGE_EXPORT_RATE_PER_TENANT",
      "USAGE_EXPORT_DROP_GUARD", "USAGE_EXPORT_ROW_KEY", "USAGE_EXPORT_FOCUS", "USAGE_EXPORT_LOG_LEVEL", "USAGE_EXPORT_EXPAND",
      "USAGE_EXPORT_QUEUE", "AzureWebJobsStorage__accountName", "AzureWebJobsStorage__credential", "AzureWebJobsStorage__clientId",
      "APPLICATIONINSIGHTS_AUTHENTICATION_STRING", "AzureFunctionsJobHost__functionTimeout",
    ], keys(azurerm_function_app_flex_consumption.main[0].app_settings))) == 0
    error_message = "Flex app settings lack: ${join(", ", setsubtract(["USAGE_EXPORT_SCOPES", "USAGE_EXPORT_STORAGE_ACCOUNT_URL", "AZURE_CLIENT_ID", "AzureWebJobsStorage__accountName", "AzureWebJobsStorage__credential", "AzureWebJobsStorage__clientId", "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"], keys(azurerm_function_app_flex_consumption.main[0].app_settings)))} (or an optional USAGE_EXPORT_* setting)."
  }

  assert {
    condition = length([
      for k in keys(azurerm_function_app_flex_consumption.main[0].app_settings) : k
      if contains(["FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "WEBSITE_RUN_FROM_PACKAGE", "WEBSITE_TIME_ZONE", "AzureWebJobsStorage", "USAGE_EXPORT_STORAGE_CONNECTION"], k) || startswith(k, "WEBSITE_CONTENT")
    ]) == 0
    error_message = "Flex app settings include settings Flex Consumption forbids or secrets: ${join(", ", [for k in keys(azurerm_function_app_flex_consumption.main[0].app_settings) : k if contains(["FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "WEBSITE_RUN_FROM_PACKAGE", "WEBSITE_TIME_ZONE", "AzureWebJobsStorage", "USAGE_EXPORT_STORAGE_CONNECTION"], k) || startswith(k, "WEBSITE_CONTENT")])}."
  }

  assert {
    condition = (
      azurerm_function_app_flex_consumption.main[0].app_settings["AZURE_CLIENT_ID"] == "11111111-1111-1111-1111-111111111111" &&
      azurerm_function_app_flex_consumption.main[0].app_settings["AzureWebJobsStorage__clientId"] == "11111111-1111-1111-1111-111111111111" &&
      azurerm_function_app_flex_consumption.main[0].app_settings["AzureWebJobsStorage__credential"] == "managedidentity" &&
      azurerm_function_app_flex_consumption.main[0].app_settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "ClientId=11111111-1111-1111-1111-111111111111;Authorization=AAD"
    )
    error_message = "The identity settings do not all name the user-assigned identity."
  }

  assert {
    condition = (
      azurerm_function_app_flex_consumption.main[0].app_settings["USAGE_EXPORT_SCOPES"] == "/providers/Microsoft.Billing/billingAccounts/8608480,/subscriptions/00000000-0000-0000-0000-000000000001" &&
      azurerm_function_app_flex_consumption.main[0].app_settings["USAGE_EXPORT_STORAGE_ACCOUNT_URL"] == "https://stmock.blob.core.windows.net" &&
      azurerm_function_app_flex_consumption.main[0].app_settings["USAGE_EXPORT_CONTAINER"] == "usage-export" &&
      azurerm_function_app_flex_consumption.main[0].app_settings["USAGE_EXPORT_SCHEDULE"] == "0 0 4 * * *" &&
      azurerm_function_app_flex_consumption.main[0].app_settings["USAGE_EXPORT_METRIC"] == "actualcost" &&
      azurerm_function_app_flex_consumption.main[0].app_settings["USAGE_EXPORT_RESTATEMENT_DAYS"] == "5" &&
      azurerm_function_app_flex_consumption.main[0].app_settings["USAGE_EXPORT_DROP_GUARD"] == "0.5" &&
      azurerm_function_app_flex_consumption.main[0].app_settings["USAGE_EXPORT_GZIP"] == "true" &&
      azurerm_function_app_flex_consumption.main[0].app_settings["USAGE_EXPORT_QUEUE"] == "usage-export-partitions" &&
      azurerm_function_app_flex_consumption.main[0].app_settings["AzureFunctionsJobHost__functionTimeout"] == "00:30:00"
    )
    error_message = "Handler settings do not render as expected: ${jsonencode(azurerm_function_app_flex_consumption.main[0].app_settings)}"
  }

  assert {
    condition     = !contains(keys(azurerm_function_app_flex_consumption.main[0].app_settings), "USAGE_EXPORT_COSTDETAILS_SCOPES")
    error_message = "USAGE_EXPORT_COSTDETAILS_SCOPES is set although costdetails_scopes is empty."
  }

  assert {
    condition     = azurerm_function_app_flex_consumption.main[0].site_config[0].application_insights_connection_string == "InstrumentationKey=33333333-3333-3333-3333-333333333333;IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/"
    error_message = "APPLICATIONINSIGHTS_CONNECTION_STRING (site_config) is not the Application Insights connection string."
  }

  assert {
    condition     = length(azurerm_linux_function_app.main) == 0 && azurerm_service_plan.main.sku_name == "FC1"
    error_message = "hosting_plan = flex must create only the Flex Consumption app on an FC1 plan."
  }

  assert {
    condition = (
      azurerm_role_assignment.app["export_blob"].scope == azurerm_storage_container.export.id &&
      azurerm_role_assignment.app["export_blob"].role_definition_name == "Storage Blob Data Contributor" &&
      azurerm_role_assignment.app["host_blob"].role_definition_name == "Storage Blob Data Owner" &&
      azurerm_role_assignment.app["host_queue"].role_definition_name == "Storage Queue Data Contributor" &&
      azurerm_storage_queue.work.name == "usage-export-partitions" &&
      azurerm_storage_queue.poison.name == "usage-export-partitions-poison" &&
      azurerm_role_assignment.app["app_insights"].role_definition_name == "Monitoring Metrics Publisher" &&
      length(azurerm_role_assignment.app) == 4 &&
      alltrue([for a in values(azurerm_role_assignment.app) : a.principal_id == "22222222-2222-2222-2222-222222222222" && a.principal_type == "ServicePrincipal"])
    )
    error_message = "Storage and monitoring role assignments are not the least-privilege set."
  }

  assert {
    condition     = length(azurerm_role_assignment.cost_reader) == 1 && contains(keys(azurerm_role_assignment.cost_reader), "/subscriptions/00000000-0000-0000-0000-000000000001")
    error_message = "Cost Management Reader must be assigned on the subscription scope only (billing scopes take billing roles): ${jsonencode(keys(azurerm_role_assignment.cost_reader))}"
  }

  assert {
    condition     = length(output.billing_scopes_needing_billing_role) == 1 && output.billing_scopes_needing_billing_role[0] == "/providers/Microsoft.Billing/billingAccounts/8608480"
    error_message = "The EA billing account scope must be reported as needing a billing role."
  }

  assert {
    condition = alltrue([
      for sa in values(azurerm_storage_account.main) :
      sa.shared_access_key_enabled == false && sa.min_tls_version == "TLS1_2" && sa.https_traffic_only_enabled && sa.allow_nested_items_to_be_public == false
    ])
    error_message = "Storage accounts must disable shared keys and public blob access and require HTTPS with TLS 1.2."
  }
}

run "flex_cleanup_planned" {
  command = plan

  assert {
    condition     = length(terraform_data.strip_injected_settings) == 1
    error_message = "The clean-up of provider-injected storage settings must be planned on flex by default."
  }
}

run "consumption_settings" {
  command = apply

  variables {
    hosting_plan       = "consumption"
    costdetails_scopes = ["/subscriptions/00000000-0000-0000-0000-000000000001"]
  }

  assert {
    condition     = length(azurerm_function_app_flex_consumption.main) == 0 && azurerm_service_plan.main.sku_name == "Y1" && length(terraform_data.strip_injected_settings) == 0
    error_message = "hosting_plan = consumption must create only the Linux function app on a Y1 plan."
  }

  assert {
    condition = (
      azurerm_linux_function_app.main[0].app_settings["AzureFunctionsJobHost__functionTimeout"] == "00:10:00" &&
      azurerm_linux_function_app.main[0].app_settings["WEBSITE_RUN_FROM_PACKAGE"] == "https://stmock.blob.core.windows.net/releases/usage-export.zip" &&
      azurerm_linux_function_app.main[0].app_settings["WEBSITE_RUN_FROM_PACKAGE_BLOB_MI_RESOURCE_ID"] == "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-ci/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-ci" &&
      azurerm_linux_function_app.main[0].app_settings["USAGE_EXPORT_COSTDETAILS_SCOPES"] == "/subscriptions/00000000-0000-0000-0000-000000000001" &&
      azurerm_linux_function_app.main[0].app_settings["AZURE_CLIENT_ID"] == "11111111-1111-1111-1111-111111111111"
    )
    error_message = "Consumption settings do not render as expected: ${jsonencode(azurerm_linux_function_app.main[0].app_settings)}"
  }

  assert {
    condition = (
      !contains(keys(azurerm_linux_function_app.main[0].app_settings), "AzureWebJobsStorage") &&
      !contains(keys(azurerm_linux_function_app.main[0].app_settings), "AzureWebJobsStorage__accountName") &&
      azurerm_linux_function_app.main[0].storage_uses_managed_identity &&
      azurerm_linux_function_app.main[0].site_config[0].application_stack[0].use_custom_runtime
    )
    error_message = "The classic app must reach host storage through the identity (storage_uses_managed_identity) and run the custom handler."
  }
}

run "premium_plan" {
  command = plan

  variables {
    hosting_plan = "premium"
    premium_sku  = "EP2"
  }

  assert {
    condition     = azurerm_service_plan.main.sku_name == "EP2" && azurerm_linux_function_app.main[0].app_settings["AzureFunctionsJobHost__functionTimeout"] == "00:30:00"
    error_message = "hosting_plan = premium must use the premium SKU with the long timeout."
  }
}

run "shared_export_account" {
  command = plan

  variables {
    separate_export_storage = false
    grant_host_table_access = true
    old_runs_retention_days = 0
  }

  assert {
    condition     = keys(azurerm_storage_account.main) == ["host"] && azurerm_role_assignment.app["host_table"].role_definition_name == "Storage Table Data Contributor" && length(azurerm_storage_management_policy.export) == 0
    error_message = "separate_export_storage = false must reuse the host account; the table grant and lifecycle rule must follow their variables."
  }
}

run "costdetails_outside_scopes" {
  command = plan

  variables {
    costdetails_scopes = ["/subscriptions/99999999-9999-9999-9999-999999999999"]
  }

  expect_failures = [azurerm_service_plan.main]
}

run "bad_scope" {
  command = plan

  variables {
    scopes = ["/providers/Microsoft.Billing/billingAccounts/8608480/"]
  }

  expect_failures = [var.scopes]
}

run "bad_schedule" {
  command = plan

  variables {
    schedule = "0 4 * * *"
  }

  expect_failures = [var.schedule]
}

run "consumption_timeout_over_limit" {
  command = plan

  variables {
    hosting_plan     = "consumption"
    function_timeout = "00:30:00"
  }

  expect_failures = [azurerm_service_plan.main]
}

run "flex_timeout_over_scale_in_grace" {
  command = plan

  variables {
    function_timeout = "02:00:00"
  }

  expect_failures = [azurerm_service_plan.main]
}
