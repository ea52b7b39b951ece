# TFLint: the bundled Terraform ruleset only (works offline). The azurerm ruleset plugin
# would have to be downloaded and is not used.
config {
  call_module_type = "none"
}

plugin "terraform" {
  enabled = true
  preset  = "recommended"
}
