data "azurerm_client_config" "current" {}

locals {
  is_flex = var.hosting_plan == "flex"

  # Deterministic per subscription, environment and region, like azd's resourceToken.
  token      = substr(sha1(join("/", [data.azurerm_client_config.current.subscription_id, var.environment_name, var.location])), 0, 8)
  short_name = substr(replace(var.environment_name, "-", ""), 0, 11)

  resource_group_name = coalesce(var.resource_group_name, "rg-${var.environment_name}")
  resource_group      = var.create_resource_group ? azurerm_resource_group.main[0] : data.azurerm_resource_group.existing[0]

  function_app_name   = coalesce(var.function_app_name, "func-${var.environment_name}-${local.token}")
  host_storage_name   = coalesce(var.host_storage_account_name, "st${local.short_name}${local.token}")
  export_storage_name = coalesce(var.export_storage_account_name, "stx${local.short_name}${local.token}")

  tags = merge(var.tags, { "azd-env-name" = var.environment_name })
}

resource "azurerm_resource_group" "main" {
  count = var.create_resource_group ? 1 : 0

  name     = local.resource_group_name
  location = var.location
  tags     = local.tags
}

data "azurerm_resource_group" "existing" {
  count = var.create_resource_group ? 0 : 1

  name = local.resource_group_name
}

# The one identity the app uses for everything: host storage, export storage, billing
# reads and Application Insights. The app gets its client id as AZURE_CLIENT_ID.
resource "azurerm_user_assigned_identity" "app" {
  name                = "id-${var.environment_name}-${local.token}"
  resource_group_name = local.resource_group.name
  location            = var.location
  tags                = local.tags
}
