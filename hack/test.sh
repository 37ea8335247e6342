#!/usr/bin/env bash
# Runs every Torii test: formatting, vet, unit, golden, fuzz seed corpora,
# feature tests (real server, real HTTP on loopback) and e2e tests against a
# real kube-apiserver and etcd, with the race detector. Needs only Go:
# everything else, those two components included, is built from the Go
# module proxy (bin/, cached until hack/tools changes).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './bin/*'))
if [ -n "$unformatted" ]; then
	echo "gofmt needed on:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...

echo "== go build"
go build -o bin/torii ./cmd/torii

echo "== kube-apiserver and etcd for the e2e tests"
./hack/e2e-tools.sh

echo "== go test (race detector)"
go test -race -count=1 -timeout 20m ./...
