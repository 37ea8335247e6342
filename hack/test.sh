#!/usr/bin/env bash
# Runs every Torii test: formatting, vet, unit, golden, fuzz seed corpora,
# feature tests (real server, real HTTP on loopback), with the race detector.
# Needs only Go; everything else is fetched through the Go module proxy.
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

echo "== go test (race detector)"
go test -race -count=1 -timeout 20m ./...
