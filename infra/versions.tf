terraform {
  # 1.8 is the oldest release this configuration is validated with (CI builds 1.8.5).
  required_version = ">= 1.8.0"

  required_providers {
    azurerm = {
      # Real deployments install the provider from the public registry as usual;
      # CI validates against a locally built azurerm 5.2.0 (see scripts/infra/).
      source  = "hashicorp/azurerm"
      version = "~> 5.2"
    }
  }

  # Remote state (optional): keep the state in a storage account with Entra ID auth
  # instead of a local file. Create the account and container once, grant yourself
  # "Storage Blob Data Contributor" on the container, then uncomment and run
  # `terraform init -migrate-state`. Values cannot use variables here; pass them with
  # `terraform init -backend-config=...` if they differ per environment.
  #
  # backend "azurerm" {
  #   resource_group_name  = "rg-tfstate"
  #   storage_account_name = "sttfstate0123456789"
  #   container_name       = "tfstate"
  #   key                  = "usage-export.tfstate"
  #   use_azuread_auth     = true
  # }
}

provider "azurerm" {
  features {}

  # null: taken from ARM_SUBSCRIPTION_ID (azd sets it) or the Azure CLI's account.
  subscription_id = var.subscription_id

  # The storage accounts have shared-key access disabled: data-plane calls the
  # provider makes must use Entra ID.
  storage_use_azuread = true
}
