locals {
  # The storage accounts by role: host always, export when separate_export_storage.
  storage_account_names = merge(
    { host = local.host_storage_name },
    var.separate_export_storage ? { export = local.export_storage_name } : {},
  )
  host_account   = azurerm_storage_account.main["host"]
  export_account = var.separate_export_storage ? azurerm_storage_account.main["export"] : local.host_account

  old_runs_prefix = coalesce(var.old_runs_prefix, var.export_prefix == "" ? "_control/runs/" : "${var.export_prefix}/_control/runs/")
}

# Host storage: AzureWebJobsStorage (timer schedule status, locks) through the managed
# identity, and the deployment package; export storage (separate_export_storage): the export
# container. Both alike: no shared keys, HTTPS and TLS 1.2 only, no anonymous blob access.
resource "azurerm_storage_account" "main" {
  for_each = local.storage_account_names

  name                            = each.value
  resource_group_name             = local.resource_group.name
  location                        = var.location
  account_kind                    = "StorageV2"
  account_tier                    = "Standard"
  account_replication_type        = var.storage_replication_type
  https_traffic_only_enabled      = true
  min_tls_version                 = "TLS1_2"
  allow_nested_items_to_be_public = false
  shared_access_key_enabled       = false
  default_to_oauth_authentication = true
  local_user_enabled              = false
  tags                            = local.tags
}

# The work queue on the host account: one message per partition, put by the timer and the
# HTTP function and consumed by UsageExportWorker (queueTrigger, identity-based connection
# AzureWebJobsStorage). The poison queue receives a message after maxDequeueCount (host.json)
# failed deliveries; the timer reads it and records the partition as failed.
resource "azurerm_storage_queue" "work" {
  name               = var.work_queue_name
  storage_account_id = local.host_account.id
}

resource "azurerm_storage_queue" "poison" {
  name               = "${var.work_queue_name}-poison"
  storage_account_id = local.host_account.id
}

# Flex Consumption: the container the platform deploys the app package into.
resource "azurerm_storage_container" "deployment" {
  count = local.is_flex ? 1 : 0

  name                  = "app-package-${local.token}"
  storage_account_id    = local.host_account.id
  container_access_type = "private"
}

# Consumption and Premium: the app runs from a zip in this container
# (WEBSITE_RUN_FROM_PACKAGE with WEBSITE_RUN_FROM_PACKAGE_BLOB_MI_RESOURCE_ID).
resource "azurerm_storage_container" "releases" {
  count = local.is_flex ? 0 : 1

  name                  = "releases"
  storage_account_id    = local.host_account.id
  container_access_type = "private"
}

resource "azurerm_storage_container" "export" {
  name                  = var.export_container_name
  storage_account_id    = local.export_account.id
  container_access_type = "private"
}

# Optional clean-up of run folders left behind by crashed or held runs.
resource "azurerm_storage_management_policy" "export" {
  count = var.old_runs_retention_days > 0 ? 1 : 0

  storage_account_id = local.export_account.id

  rule {
    name    = "delete-old-runs"
    enabled = true

    filters {
      blob_types   = ["blockBlob"]
      prefix_match = ["${azurerm_storage_container.export.name}/${local.old_runs_prefix}"]
    }

    actions {
      base_blob {
        delete_after_days_since_modification_greater_than = var.old_runs_retention_days
      }
    }
  }
}
