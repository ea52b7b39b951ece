resource "azurerm_log_analytics_workspace" "main" {
  name                = "log-${var.environment_name}-${local.token}"
  resource_group_name = local.resource_group.name
  location            = var.location
  sku                 = "PerGB2018"
  retention_in_days   = var.log_retention_days
  tags                = local.tags
}

# Local (instrumentation key) authentication is off: the app sends telemetry with its
# managed identity (APPLICATIONINSIGHTS_AUTHENTICATION_STRING), which holds Monitoring
# Metrics Publisher on this component.
resource "azurerm_application_insights" "main" {
  name                         = "appi-${var.environment_name}-${local.token}"
  resource_group_name          = local.resource_group.name
  location                     = var.location
  workspace_id                 = azurerm_log_analytics_workspace.main.id
  application_type             = "other"
  local_authentication_enabled = false
  tags                         = local.tags
}
