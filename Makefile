# Tollgate's build. `make run` starts a local node, `make test` runs every test.

GO        ?= go
BIN       := bin
PROTOC    ?= protoc
PROTO_SRC := $(shell find proto -name '*.proto')

.PHONY: build test fuzz deploy-check bench bench-compare bench-micro proto lint run clean

build:
	$(GO) build -o $(BIN)/tollgate ./cmd/tollgate

test: fuzz deploy-check
	$(GO) test -race -count=1 ./...

# The alerting rules and their unit tests, with Prometheus's promtool
# (Debian's prometheus package; .ci/run installs it). Without it they are
# skipped, except in CI, where that fails.
deploy-check:
	@if command -v promtool >/dev/null 2>&1; then \
		promtool check rules deploy/prometheus/alerts.yml && \
		promtool test rules deploy/prometheus/alerts_test.yml; \
	elif [ -n "$$CI" ]; then \
		echo "promtool is not installed; .ci/run installs it (apt-get install prometheus)"; exit 1; \
	else \
		echo "promtool not installed: alert rule tests skipped (apt-get install prometheus)"; \
	fi

# A short run of every fuzz target over outside input (the corpus under
# testdata/fuzz runs as ordinary tests too). The budget is a count of
# inputs, about 3 s of fuzzing each here, never a time: under load the
# coordinator can miss a time-based deadline and fail the run (Go issue
# 75804) although the code under test is fine.
FUZZ_EXECS ?= 30000x

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeCheck$$' -fuzztime $(FUZZ_EXECS) ./api
	$(GO) test -run '^$$' -fuzz '^FuzzAdminJSON$$' -fuzztime $(FUZZ_EXECS) ./api
	$(GO) test -run '^$$' -fuzz '^FuzzCheckFastPath$$' -fuzztime $(FUZZ_EXECS) ./api
	$(GO) test -run '^$$' -fuzz '^FuzzRLSRequest$$' -fuzztime $(FUZZ_EXECS) ./api
	$(GO) test -run '^$$' -fuzz '^FuzzRLSYAML$$' -fuzztime $(FUZZ_EXECS) ./cmd/tollgate
	$(GO) test -run '^$$' -fuzz '^FuzzApply$$' -fuzztime $(FUZZ_EXECS) ./cluster/config
	$(GO) test -run '^$$' -fuzz '^FuzzRestore$$' -fuzztime $(FUZZ_EXECS) ./cluster/config
	$(GO) test -run '^$$' -fuzz '^FuzzInference$$' -fuzztime $(FUZZ_EXECS) ./proxy
	$(GO) test -run '^$$' -fuzz '^FuzzSSERelay$$' -fuzztime $(FUZZ_EXECS) ./proxy
	$(GO) test -run '^$$' -fuzz '^FuzzRequest$$' -fuzztime $(FUZZ_EXECS) ./proxy/mockupstream

# The standard load: a 3-node cluster of tollgate processes, 2,000 checks a
# second over gRPC for 20 s, with SLO gates; writes bench-report.html and
# bench-report.json (see README, "tollgate bench").
bench: build
	$(BIN)/tollgate bench --spawn 3 --scenario check-grpc --rate 2000 --duration 20s \
		--tenants 1000 --zipf 1.1 --limit 600 --period 1m \
		--slo p99=25ms --slo error-rate=0.1% --slo overshoot=0% \
		--json bench-report.json --html bench-report.html

# One node against three, the same load over HTTP back to back, at 64 and
# 16 workers: one table each (req/s and its ratio, p50/p99/p99.9, the
# nodes' allocations and CPU per request). See README, "tollgate bench".
bench-compare: build
	for w in 64 16; do \
		$(BIN)/tollgate bench --compare 1,3 --scenario check-http --workers $$w --duration 15s \
			--tenants 1000 --zipf 0 --limit 1000000000 --period 1m --quiet || exit 1; \
	done

# Limiter (memory per bucket and the sweep's cost to the tail included)
# and ring micro-benchmarks, batched against unary forwarding between 3
# in-process nodes, the gateway against a plain reverse proxy to the same
# mock upstream, and the /v1/check decoder against encoding/json; pipe
# through benchstat to compare runs.
bench-micro:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./limiter
	$(GO) test -run '^$$' -bench 'RingOwner|Forwarding|VerifyKey' -benchmem -benchtime 3s -count 5 ./cluster/...
	$(GO) test -run '^$$' -bench 'Gateway' -benchtime 3s -count 5 ./cmd/tollgate
	$(GO) test -run '^$$' -bench 'EnvoyRLS|DecodeCheck' -benchmem -benchtime 3s -count 6 ./api

# Regenerates the Go under proto/ with Debian's protoc and the plugin
# versions pinned in go.mod.
proto:
	$(GO) build -o $(BIN)/ google.golang.org/protobuf/cmd/protoc-gen-go google.golang.org/grpc/cmd/protoc-gen-go-grpc
	$(PROTOC) -I proto \
		--plugin=protoc-gen-go=$(BIN)/protoc-gen-go --go_out=proto --go_opt=paths=source_relative \
		--plugin=protoc-gen-go-grpc=$(BIN)/protoc-gen-go-grpc --go-grpc_out=proto --go-grpc_opt=paths=source_relative \
		$(PROTO_SRC)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

# A 3-node cluster on loopback in one process; Ctrl-C stops it.
run: build
	$(BIN)/tollgate dev --nodes 3

clean:
	rm -rf $(BIN)
