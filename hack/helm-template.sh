#!/usr/bin/env bash
# Renders the Helm chart in deploy/chart/torii with Helm built from the Go
# module proxy (no helm binary needed; the first run builds it, ~2 minutes).
#
#   hack/helm-template.sh [helm template flags...]  render to stdout
#   hack/helm-template.sh --update                  rewrite deploy/testdata/chart-*.yaml
#   hack/helm-template.sh --check                   lint, and fail if those renderings are stale
#
# deploy/testdata/chart-default.yaml is the chart with its default values,
# release "torii" in namespace "torii-system"; deploy/deploy_test.go checks it
# is equivalent to deploy/torii.yaml. chart-watch-namespaces.yaml renders
# deploy/testdata/values-watch-namespaces.yaml (namespaced RBAC), and
# chart-webhook-cert-manager.yaml values-webhook-cert-manager.yaml (the
# webhook with a certificate managed elsewhere), and chart-dedicated.yaml
# values-dedicated.yaml (dedicated mode: its RBAC and flags).
set -euo pipefail
cd "$(dirname "$0")/.."

HELM_VERSION=v3.22.0
helm() { go run "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}" "$@"; }

chart=deploy/chart/torii
# Without --kube-version a helm built by `go run` assumes Kubernetes v1.20.
KUBE_VERSION=v1.36.0
render() { helm template torii "$chart" --namespace torii-system --kube-version "$KUBE_VERSION" "$@"; }

# Each rendering: output file, then the values flags that produce it.
renderings=(
	"deploy/testdata/chart-default.yaml|"
	"deploy/testdata/chart-watch-namespaces.yaml|--values deploy/testdata/values-watch-namespaces.yaml"
	"deploy/testdata/chart-webhook-cert-manager.yaml|--values deploy/testdata/values-webhook-cert-manager.yaml"
	"deploy/testdata/chart-dedicated.yaml|--values deploy/testdata/values-dedicated.yaml"
)

case "${1:-}" in
--update | --check)
	mode=$1
	helm lint --strict --kube-version "$KUBE_VERSION" "$chart"
	helm lint --strict --kube-version "$KUBE_VERSION" "$chart" --values deploy/testdata/values-watch-namespaces.yaml
	helm lint --strict --kube-version "$KUBE_VERSION" "$chart" --values deploy/testdata/values-webhook-cert-manager.yaml
	helm lint --strict --kube-version "$KUBE_VERSION" "$chart" --values deploy/testdata/values-dedicated.yaml
	stale=0
	for r in "${renderings[@]}"; do
		out=${r%%|*}
		# shellcheck disable=SC2086 # the values flags are meant to split
		rendered=$(render ${r#*|})
		if [ "$mode" = --update ]; then
			printf '%s\n' "$rendered" >"$out"
			echo "wrote $out"
		elif ! diff -u "$out" <(printf '%s\n' "$rendered"); then
			echo "$out is stale: run hack/helm-template.sh --update" >&2
			stale=1
		fi
	done
	exit $stale
	;;
*)
	render "$@"
	;;
esac
