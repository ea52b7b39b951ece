# Resources that were declared one by one and now come from one for_each: these keep existing
# deployments' objects (Terraform moves them in the state; nothing is destroyed or recreated).

# The identity's role assignments (roles.tf, local.app_roles).
moved {
  from = azurerm_role_assignment.host_blob
  to   = azurerm_role_assignment.app["host_blob"]
}

moved {
  from = azurerm_role_assignment.host_queue
  to   = azurerm_role_assignment.app["host_queue"]
}

moved {
  from = azurerm_role_assignment.host_table[0]
  to   = azurerm_role_assignment.app["host_table"]
}

moved {
  from = azurerm_role_assignment.export_blob
  to   = azurerm_role_assignment.app["export_blob"]
}

moved {
  from = azurerm_role_assignment.app_insights
  to   = azurerm_role_assignment.app["app_insights"]
}

# The host and export storage accounts (storage.tf, local.storage_account_names).
moved {
  from = azurerm_storage_account.host
  to   = azurerm_storage_account.main["host"]
}

moved {
  from = azurerm_storage_account.export[0]
  to   = azurerm_storage_account.main["export"]
}
