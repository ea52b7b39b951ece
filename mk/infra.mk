# Infrastructure targets. The main Makefile includes this file; it also works alone:
#   make -f mk/infra.mk infra-validate
#
# infra-tools     build the pinned Terraform, TFLint and azurerm provider from the Go
#                 module proxy into $USAGE_EXPORT_TOOLS_CACHE (default
#                 ~/.cache/usage-export-infra-tools); about 30 minutes once, then reused.
# infra-validate  terraform fmt -check, init -backend=false, validate and test, and tflint,
#                 offline against the locally built provider.

INFRA_ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/..)

.PHONY: infra-tools infra-validate

infra-tools:
	bash "$(INFRA_ROOT)/scripts/infra/tools.sh"

infra-validate:
	bash "$(INFRA_ROOT)/scripts/infra/validate.sh"
