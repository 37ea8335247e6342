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

# HTTP/1 requests take the fast path by default; net/http serves what it
# hands off, HTTP/2, and everything with --http1-fast-path=false. The suites
# that speak raw HTTP/1 run once more through the path they did not use
# above: the feature tests on net/http, the proxy's wire tests on the fast path.
echo "== feature tests with --http1-fast-path=false; proxy wire tests on the fast path"
TORII_TEST_HTTP1_FAST_PATH=0 go test -race -count=1 -timeout 10m ./test/feature/
TORII_TEST_HTTP1_FAST_PATH=1 go test -race -count=1 -timeout 10m ./internal/dataplane/proxy/
