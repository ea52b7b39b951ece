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

# The identity's data-plane roles, one assignment each, keyed by what it is for: the
# least-privilege set the app needs.
locals {
  app_roles = {
    # Host storage: the Functions host keeps timer status and locks in blobs. Blob Data Owner is
    # what the host's identity-based connection requires; Flex also reads the deployment package
    # from this account with it.
    host_blob = { scope = local.host_account.id, role = "Storage Blob Data Owner", enabled = true }
    # The work queue and its poison queue live on the host account: the handler enqueues and
    # reads the poison queue, and the host's queue trigger receives, updates and deletes messages.
    host_queue = { scope = local.host_account.id, role = "Storage Queue Data Contributor", enabled = true }
    # Only the host's diagnostic events use tables (grant_host_table_access).
    host_table = { scope = local.host_account.id, role = "Storage Table Data Contributor", enabled = var.grant_host_table_access }
    # Export data: read and write blobs in the export container only.
    export_blob = { scope = azurerm_storage_container.export.id, role = "Storage Blob Data Contributor", enabled = true }
    # Telemetry with Entra ID authentication.
    app_insights = { scope = azurerm_application_insights.main.id, role = "Monitoring Metrics Publisher", enabled = true }
  }
}

resource "azurerm_role_assignment" "app" {
  for_each = { for k, r in local.app_roles : k => r if r.enabled }

  scope                = each.value.scope
  role_definition_name = each.value.role
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
