#!/usr/bin/env bash
# Validates infra/ offline with the pinned tools from scripts/infra/tools.sh:
#   terraform fmt -check, init -backend=false (providers from a local filesystem mirror),
#   validate, test (mocked provider: renders and checks the app settings), and tflint.
# Works on a copy of infra/ without lock files or .terraform: a lock file carries the
# registry's hashes, which a locally built provider does not match.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
infra="$root/infra"

step() { printf '\n== %s\n' "$*"; }

start=$SECONDS
step "tools"
env_lines="$("$root/scripts/infra/tools.sh" --print-env)"
eval "$env_lines"

work="$(mktemp -d "${TMPDIR:-/tmp}/usage-export-infra-validate.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# Offline: providers only from the mirror, no version checkpoint calls.
cat >"$work/cli.tfrc" <<HCL
provider_installation {
  filesystem_mirror {
    path = "$INFRA_MIRROR"
  }
}
HCL
export TF_CLI_CONFIG_FILE="$work/cli.tfrc"
export CHECKPOINT_DISABLE=1
export TF_IN_AUTOMATION=1
export TF_INPUT=0
"$INFRA_TERRAFORM" version
"$INFRA_TFLINT" --version

step "terraform fmt -check -recursive"
"$INFRA_TERRAFORM" -chdir="$infra" fmt -check -recursive -diff

mkdir -p "$work/infra"
tar -C "$infra" \
	--exclude=.terraform --exclude=.terraform.lock.hcl --exclude='*.tfstate' --exclude='*.tfstate.*' \
	-cf - . | tar -C "$work/infra" -xf -

step "terraform init -backend=false"
"$INFRA_TERRAFORM" -chdir="$work/infra" init -backend=false -no-color

step "terraform validate"
"$INFRA_TERRAFORM" -chdir="$work/infra" validate -no-color

step "terraform test (mocked azurerm: app settings, roles, plan variants)"
"$INFRA_TERRAFORM" -chdir="$work/infra" test -no-color

step "tflint (terraform ruleset, recommended preset)"
(cd "$work/infra" && "$INFRA_TFLINT" --config=.tflint.hcl --no-color)
echo "tflint: no issues"

step "infra-validate passed in $((SECONDS - start))s"
