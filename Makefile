.PHONY: build test demo bench
build:
	go build -o bin/torii ./cmd/torii
test:
	./hack/test.sh
demo:
	go run ./cmd/torii demo
bench: # load test vs nginx/haproxy, see docs/performance.md; e.g. make bench BENCHFLAGS='-duration 2s -rounds 1'
	go run ./bench/loadbench $(BENCHFLAGS)
