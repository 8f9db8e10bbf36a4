# Targets for building and testing the AMTP toolkit. Run `make help`.

GO ?= go
BIN := bin
FUZZTIME ?= 30s

.PHONY: help deps build demo test vet race fuzz bench conform-repeat clean

help:
	@echo "make build   build amtpd and amtpkit into $(BIN)/"
	@echo "make demo    build, then stage amtpd, run the suite and a short load, write reports to $(DEMO_OUT)/"
	@echo "make deps    install the Debian packages the tests drive (as root, when missing)"
	@echo "make test    install what is missing, vet, then run every test (the command CI runs)"
	@echo "make vet     go vet ./..."
	@echo "make race    run the tests with the race detector"
	@echo "make fuzz    run each fuzz target for FUZZTIME (default $(FUZZTIME))"
	@echo "make bench   run the benchmarks written up in docs/benchmarks.md"
	@echo "make conform-repeat  run the conformance suite against amtpd RUNS times (default 20) and compare verdicts (needs jq)"

build:
	$(GO) build -buildvcs=auto -o $(BIN)/ ./cmd/...

DEMO_OUT ?= reports

demo: build
	$(BIN)/amtpkit demo --out $(DEMO_OUT)

deps:
	bash .ci/deps

vet:
	$(GO) vet ./...

test: deps vet
	$(GO) test -count=1 ./...

race:
	$(GO) test -count=1 -race ./...

# Fuzz targets run one at a time: go test -fuzz accepts one package and one
# target per run.
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzReadCommandLine$$' -fuzztime=$(FUZZTIME) ./reference/smtp/
	$(GO) test -run='^$$' -fuzz='^FuzzReadData$$' -fuzztime=$(FUZZTIME) ./reference/smtp/
	$(GO) test -run='^$$' -fuzz='^FuzzParseMail$$' -fuzztime=$(FUZZTIME) ./reference/smtp/
	$(GO) test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) ./reference/mpc/

bench:
	$(GO) test -run='^$$' -bench=BenchmarkSession/ecdsa/handshake -benchtime=2000x ./reference/server/
	$(GO) test -run='^$$' -bench=BenchmarkSession/rsa/handshake -benchtime=1000x ./reference/server/
	$(GO) test -run='^$$' -bench=BenchmarkSession/ecdsa/one-message-discard -benchtime=2000x ./reference/server/
	$(GO) test -run='^$$' -bench=BenchmarkSession/ecdsa/one-message-maildir -benchtime=300x ./reference/server/

RUNS ?= 20

conform-repeat:
	bash conformance/repeat.sh $(RUNS)

clean:
	rm -rf $(BIN)
