# maruta — build, test, benchmark. `make test` is what CI runs (.ci/run).
GO        ?= go
CACHE     ?= $(CURDIR)/.cache
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo none)
LDFLAGS   := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)

export MARUTA_VERSITYGW  := $(CACHE)/bin/versitygw
export MARUTA_DUCKDB_DIR := $(CACHE)/duckdb

.PHONY: build test tools lint vet bench bench-targets bench-docker image fuzz clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/maruta ./cmd/maruta

## tools: install the pinned S3 server (versitygw), Parquet reader (DuckDB), staticcheck and deadcode
tools:
	MARUTA_CACHE=$(CACHE) ./scripts/install-test-tools.sh >/dev/null

# The concurrent packages' tests run with the race detector, instead of a
# plain run (both would add the plain run's minutes again); the race build of
# cmd/maruta's tests also builds the maruta binary they start with -race.
RACE_PKGS  := ./forward/... ./buffer/... ./router/... ./sinks/... ./cmd/maruta/...
PLAIN_PKGS  = $(filter-out $(shell $(GO) list $(RACE_PKGS)),$(shell $(GO) list ./...))

## test: the linters, then every test, with the real S3 server, DuckDB and FUSE (tools installed first)
test: tools lint
	MARUTA_REQUIRE_TOOLS=1 $(GO) test -count=1 -timeout 20m $(PLAIN_PKGS)
	MARUTA_REQUIRE_TOOLS=1 $(GO) test -race -count=1 -timeout 30m $(RACE_PKGS)

## lint: go vet, staticcheck and deadcode -test; any finding fails it (a
## deliberate staticcheck exception carries a //lint:ignore saying why; a
## function no code or test reaches is deleted)
lint: tools
	$(GO) vet ./...
	$(CACHE)/bin/staticcheck ./...
	@dead=$$($(CACHE)/bin/deadcode -test ./...) && [ -z "$$dead" ] || { echo "$$dead"; echo "deadcode: functions no code or test reaches"; exit 1; }

## bench: the Go benchmarks of every hot path
bench: tools
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./...

## image: the Docker image, version and commit stamped
image:
	docker build -t maruta:$(VERSION) --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) .

## bench-targets: the load scenarios of BENCHMARKS.md against a real maruta (about 20 min)
bench-targets: tools build
	MARUTA_BIN=$(CURDIR)/bin/maruta ./scripts/bench-targets.sh all

## bench-docker: real Docker daemon → maruta (and Fluent Bit with FLUENT_BIT_BIN=…), lines stored and receiver CPU
bench-docker: tools build
	MARUTA_BIN=$(CURDIR)/bin/maruta ./scripts/bench-docker.sh $(RECEIVERS)

clean:
	rm -rf bin
