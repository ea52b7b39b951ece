locals {
  # Scopes that are Azure Resource Manager scopes, where Cost Management Reader is an
  # ordinary role assignment. Billing scopes (EA enrollment, department, enrollment
  # account; MCA billing account, profile, invoice section) take billing roles instead.
  arm_scopes = [
    for s in var.scopes : s
    if can(regex("(?i)^/subscriptions/", s)) || can(regex("(?i)^/providers/Microsoft\\.Management/managementGroups/", s))
  ]
  billing_scopes = [for s in var.scopes : s if !contains(local.arm_scopes, s)]
}

# Host storage: the Functions host keeps timer status and locks in blobs. Blob Data Owner
# is what the host's identity-based connection requires; Flex also reads the deployment
# package from this account with it.
resource "azurerm_role_assignment" "host_blob" {
  scope                = azurerm_storage_account.host.id
  role_definition_name = "Storage Blob Data Owner"
  principal_id         = azurerm_user_assigned_identity.app.principal_id
  principal_type       = "ServicePrincipal"
}

# The work queue and its poison queue live on the host account: the handler enqueues and
# reads the poison queue, and the host's queue trigger receives, updates and deletes messages.
resource "azurerm_role_assignment" "host_queue" {
  scope                = azurerm_storage_account.host.id
  role_definition_name = "Storage Queue Data Contributor"
  principal_id         = azurerm_user_assigned_identity.app.principal_id
  principal_type       = "ServicePrincipal"
}

resource "azurerm_role_assignment" "host_table" {
  count = var.grant_host_table_access ? 1 : 0

  scope                = azurerm_storage_account.host.id
  role_definition_name = "Storage Table Data Contributor"
  principal_id         = azurerm_user_assigned_identity.app.principal_id
  principal_type       = "ServicePrincipal"
}

# Export data: read and write blobs in the export container only.
resource "azurerm_role_assignment" "export_blob" {
  scope                = azurerm_storage_container.export.id
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = azurerm_user_assigned_identity.app.principal_id
  principal_type       = "ServicePrincipal"
}

# Telemetry with Entra ID authentication.
resource "azurerm_role_assignment" "app_insights" {
  scope                = azurerm_application_insights.main.id
  role_definition_name = "Monitoring Metrics Publisher"
  principal_id         = azurerm_user_assigned_identity.app.principal_id
  principal_type       = "ServicePrincipal"
}

# Billing reads on subscription, resource group and management group scopes.
resource "azurerm_role_assignment" "cost_reader" {
  for_each = var.assign_cost_management_reader ? toset(local.arm_scopes) : toset([])

  scope                = each.value
  role_definition_name = "Cost Management Reader"
  principal_id         = azurerm_user_assigned_identity.app.principal_id
  principal_type       = "ServicePrincipal"
}
