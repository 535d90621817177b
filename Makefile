# The one test command (README, CI): installs what the tests need, checks
# generated code and formatting, runs every test (unit, end-to-end with real
# peer clients), then a short run of every fuzz target.
GO ?= go

.PHONY: test deps generate check-generated vet unit fuzz run build bench

test: deps check-generated vet unit fuzz

deps:
	./scripts/install-test-deps.sh

generate:
	$(GO) generate ./...

# Generated code must match the schema and the generator.
check-generated:
	$(GO) generate ./...
	@git diff --exit-code --stat -- internal/api || (echo "internal/api is stale: run 'go generate ./...' and commit" && exit 1)

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...

# tests/e2e boots real guests and Xen under QEMU (5-6 min here): more than
# go test's default 10-minute limit per package leaves room on a slow machine.
unit:
	$(GO) test -count=1 -timeout 15m ./...

fuzz:
	FUZZTIME=$${FUZZTIME:-5s} ./scripts/fuzz-short.sh

build:
	$(GO) build -o bin/xenithd ./cmd/xenithd
	$(GO) build -o bin/xe ./cmd/xe

run:
	$(GO) run ./cmd/xenithd

bench:
	./bench/run.sh
