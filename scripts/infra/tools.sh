#!/usr/bin/env bash
# Builds the pinned infrastructure tools (Terraform, TFLint, the azurerm provider) from
# the Go module proxy into a cache folder outside the repository, stamped per version,
# and reuses them when present.
#
# Usage: scripts/infra/tools.sh [--print-env]
#   --print-env  print shell assignments (INFRA_TERRAFORM, INFRA_TFLINT, INFRA_MIRROR,
#                INFRA_PROVIDER_VERSION) for the tools, after making sure they exist.
#
# Environment:
#   USAGE_EXPORT_TOOLS_CACHE  cache folder (default: $HOME/.cache/usage-export-infra-tools)
#
# The Go build and module caches used for the build live in a temporary folder that is
# deleted afterwards: together they take several GB.
set -euo pipefail

# Pinned versions. The azurerm provider is only reachable from the module proxy as a
# pseudo-version of an old major; the commit below is the azurerm 5.2.0 release.
TERRAFORM_MODULE=github.com/hashicorp/terraform
TERRAFORM_VERSION=v1.8.5
TFLINT_MODULE=github.com/terraform-linters/tflint
TFLINT_VERSION=v0.64.0
AZURERM_MODULE=github.com/hashicorp/terraform-provider-azurerm
AZURERM_MODULE_VERSION=v1.44.1-0.20260824201233-fae580791926
AZURERM_VERSION=5.2.0

CACHE="${USAGE_EXPORT_TOOLS_CACHE:-$HOME/.cache/usage-export-infra-tools}"
PLATFORM="$(go env GOOS)_$(go env GOARCH)"

log() { printf '[infra-tools] %s\n' "$*" >&2; }

print_env=false
case "${1:-}" in
--print-env) print_env=true ;;
"") ;;
*)
	echo "usage: $0 [--print-env]" >&2
	exit 2
	;;
esac

mkdir -p "$CACHE"
# One build at a time per cache folder.
exec 9>"$CACHE/.lock"
flock 9

tf_dir="$CACHE/terraform/$TERRAFORM_VERSION"
tflint_dir="$CACHE/tflint/$TFLINT_VERSION"
azurerm_dir="$CACHE/azurerm/$AZURERM_MODULE_VERSION"
mirror="$CACHE/mirror"

stamp_ok() { # dir "module@version extra-ldflags"
	[[ -f "$1/.stamp" && "$(cat "$1/.stamp")" == "$2" ]]
}

work=""
cleanup() {
	if [[ -n "$work" && -d "$work" ]]; then
		chmod -R u+w "$work" 2>/dev/null || true
		rm -rf "$work"
	fi
}
trap cleanup EXIT

gobuild() { # module version dest-dir [extra ldflags]
	local module="$1" version="$2" dest="$3" ldflags="-s -w ${4:-}" start
	if [[ -z "$work" ]]; then
		work="$(mktemp -d "${TMPDIR:-/tmp}/usage-export-infra-build.XXXXXX")"
	fi
	start=$SECONDS
	log "building $module@$version (this takes minutes on a fresh machine)"
	rm -rf "$dest"
	mkdir -p "$dest"
	GOBIN="$dest" GOMODCACHE="$work/mod" GOCACHE="$work/build" GOFLAGS="-mod=mod" \
		GOTOOLCHAIN=local CGO_ENABLED=0 \
		go install -trimpath -ldflags="$ldflags" "$module@$version"
	echo "$module@$version${4:+ $4}" >"$dest/.stamp"
	log "built $module@$version in $((SECONDS - start))s"
}

# A release build: without this Terraform reports itself as "-dev".
TERRAFORM_LDFLAGS="-X $TERRAFORM_MODULE/version.dev=no"

stamp_ok "$tf_dir" "$TERRAFORM_MODULE@$TERRAFORM_VERSION $TERRAFORM_LDFLAGS" ||
	gobuild "$TERRAFORM_MODULE" "$TERRAFORM_VERSION" "$tf_dir" "$TERRAFORM_LDFLAGS"
stamp_ok "$tflint_dir" "$TFLINT_MODULE@$TFLINT_VERSION" ||
	gobuild "$TFLINT_MODULE" "$TFLINT_VERSION" "$tflint_dir"
stamp_ok "$azurerm_dir" "$AZURERM_MODULE@$AZURERM_MODULE_VERSION" ||
	gobuild "$AZURERM_MODULE" "$AZURERM_MODULE_VERSION" "$azurerm_dir"

# The filesystem mirror needs the provider's full source address, whose host part is
# Terraform's default provider registry. Ask Terraform for it instead of spelling it here.
provider_host() {
	local d out
	d="$(mktemp -d)"
	cat >"$d/main.tf" <<'HCL'
terraform {
  required_providers {
    azurerm = { source = "hashicorp/azurerm" }
  }
}
HCL
	: >"$d/cli.tfrc"
	out="$(cd "$d" && TF_CLI_CONFIG_FILE="$d/cli.tfrc" "$tf_dir/terraform" providers 2>&1)" || {
		rm -rf "$d"
		echo "$out" >&2
		return 1
	}
	rm -rf "$d"
	sed -n 's|.*provider\[\([^]/]*\)/hashicorp/azurerm\].*|\1|p' <<<"$out" | head -n1
}

host="$(provider_host)"
if [[ -z "$host" ]]; then
	log "could not find the provider host from 'terraform providers'"
	exit 1
fi
plugin_dir="$mirror/$host/hashicorp/azurerm/$AZURERM_VERSION/$PLATFORM"
plugin="$plugin_dir/terraform-provider-azurerm_v$AZURERM_VERSION"
if [[ ! "$plugin" -ef "$azurerm_dir/terraform-provider-azurerm" ]] &&
	! cmp -s "$plugin" "$azurerm_dir/terraform-provider-azurerm"; then
	rm -rf "$mirror"
	mkdir -p "$plugin_dir"
	# A hard link where possible: the binary is over 200 MB.
	ln "$azurerm_dir/terraform-provider-azurerm" "$plugin" 2>/dev/null ||
		cp "$azurerm_dir/terraform-provider-azurerm" "$plugin"
	log "provider mirror ready"
fi

if $print_env; then
	printf 'INFRA_TERRAFORM=%q\n' "$tf_dir/terraform"
	printf 'INFRA_TFLINT=%q\n' "$tflint_dir/tflint"
	printf 'INFRA_MIRROR=%q\n' "$mirror"
	printf 'INFRA_PROVIDER_VERSION=%q\n' "$AZURERM_VERSION"
fi
