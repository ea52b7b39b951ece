locals {
  # The default host name of whichever function app the hosting plan creates.
  function_app_hostname = local.is_flex ? azurerm_function_app_flex_consumption.main[0].default_hostname : azurerm_linux_function_app.main[0].default_hostname
}

output "function_app_name" {
  description = "Name of the function app (publish the zip to it)."
  value       = local.function_app_name
}

output "function_urls" {
  description = "URLs of the functions. http needs a function key (az functionapp function keys list); timer_run is the admin endpoint that runs the timer function once (POST with the master key and body {})."
  value = {
    http      = "https://${local.function_app_hostname}/api/${var.http_function_route}"
    timer_run = "https://${local.function_app_hostname}/admin/functions/UsageExportTimer"
  }
}

output "export_container_url" {
  description = "URL of the export container."
  value       = "${local.export_account.primary_blob_endpoint}${azurerm_storage_container.export.name}"
}

output "identity_principal_id" {
  description = "Object (principal) id of the app's user-assigned identity: the principalId for billing role assignments."
  value       = azurerm_user_assigned_identity.app.principal_id
}

output "identity_client_id" {
  description = "Client id of the app's user-assigned identity (AZURE_CLIENT_ID)."
  value       = azurerm_user_assigned_identity.app.client_id
}

output "tenant_id" {
  description = "Tenant of the identity: the principalTenantId for billing role assignments."
  value       = azurerm_user_assigned_identity.app.tenant_id
}

output "billing_scopes_needing_billing_role" {
  description = "Scopes in scopes that are billing scopes: an EA or MCA administrator must give the identity a billing reader role there (docs/deployment.md)."
  value       = local.billing_scopes
}

output "host_storage_account_name" {
  description = "Storage account of the Functions host (and, on consumption/premium, of the releases container)."
  value       = local.host_account.name
}

output "package_url" {
  description = "consumption/premium: blob the app runs from; upload the zip there. null on flex."
  value       = local.is_flex ? null : local.classic_app_settings.WEBSITE_RUN_FROM_PACKAGE
}

output "AZURE_RESOURCE_GROUP" {
  description = "Resource group (read by azd to find the service)."
  value       = local.resource_group.name
}

output "AZURE_FUNCTION_APP_NAME" {
  description = "Function app name, as an azd environment value."
  value       = local.function_app_name
}
