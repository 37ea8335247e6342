.PHONY: build test demo
build:
	go build -o bin/torii ./cmd/torii
test:
	./hack/test.sh
demo:
	go run ./cmd/torii demo
