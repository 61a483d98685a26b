# Herald: what humans and CI call. `make run` and `make test` are the two
# commands of the README's quick start.
GO        ?= go
STATICCHECK = honnef.co/go/tools/cmd/staticcheck@v0.8.2
PKGS      := ./...
FUZZTIME  ?= 30s

.PHONY: run build test test-go test-js lint fmt bench fuzz clean

## run: the server on the embedded in-memory engine (no Redis needed), 127.0.0.1:8080.
## It runs the built binary rather than `go run`, which reports the process's
## clean exit on Ctrl-C as a failure (exit 1, and make's "Error 1").
run: build
	./bin/herald serve --log-format text --demo

## build: the herald binary in ./bin
build:
	$(GO) build -o bin/herald ./cmd/herald

## test: the whole test suite: the JS client's tests (node --test), then gofmt and
## vet checks and every Go test with -race (including the browser test of the demo).
## The Go tests run through internal/testsummary: one line per package, the output
## of failing tests, and at the end every skipped test with its reason (a missing
## tool and how to install it); the exit code is go test's.
test: test-js test-go

test-js:
	cd clients/js && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && node --test test/unit.test.js test/client.test.js

test-go:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)
	GOOS=darwin $(GO) vet ./transport  # the non-Linux fallbacks (no epoll, no raw writev) must build
	$(GO) run ./internal/testsummary $(GO) test -json -race -count=1 -timeout 15m $(PKGS)
	HERALD_IO_URING=off $(GO) run ./internal/testsummary $(GO) test -json -race -count=1 ./transport  # the writev path, used where io_uring is not

## lint: vet and staticcheck
lint:
	$(GO) vet $(PKGS)
	$(GO) run $(STATICCHECK) $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

## bench: micro-benchmarks, benchstat-ready (count=6)
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count=6 ./... | tee bench.out

## fuzz: each fuzz target for FUZZTIME (the transport's over real loopback sockets); TestMakeFuzzRunsEveryTarget
## (cmd/herald) fails when one is missing here
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./protocol/
	$(GO) test -run '^$$' -fuzz '^FuzzReadFrames$$' -fuzztime $(FUZZTIME) ./transport/
	$(GO) test -run '^$$' -fuzz '^FuzzSocketFrames$$' -fuzztime $(FUZZTIME) ./transport/
	$(GO) test -run '^$$' -fuzz '^FuzzUpgradeRequest$$' -fuzztime $(FUZZTIME) ./transport/
	$(GO) test -run '^$$' -fuzz '^FuzzDeflateNegotiation$$' -fuzztime $(FUZZTIME) ./transport/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/httphead/
	$(GO) test -run '^$$' -fuzz '^FuzzGet$$' -fuzztime $(FUZZTIME) ./internal/query/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeText$$' -fuzztime $(FUZZTIME) ./protocol/engineio/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodePayload$$' -fuzztime $(FUZZTIME) ./protocol/engineio/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeHandshake$$' -fuzztime $(FUZZTIME) ./protocol/engineio/
	$(GO) test -run '^$$' -fuzz '^FuzzPollingPost$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./transport/engineio/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodePacket$$' -fuzztime $(FUZZTIME) ./protocol/socketio/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeAttachments$$' -fuzztime $(FUZZTIME) ./protocol/socketio/
	$(GO) test -run '^$$' -fuzz '^FuzzClient$$' -fuzztime $(FUZZTIME) ./adapter/socketio/
	$(GO) test -run '^$$' -fuzz '^FuzzSplitArray$$' -fuzztime $(FUZZTIME) ./protocol/socketio/
	$(GO) test -run '^$$' -fuzz '^FuzzExtractToken$$' -fuzztime $(FUZZTIME) ./auth/jwt/
	$(GO) test -run '^$$' -fuzz '^FuzzCookieHeader$$' -fuzztime $(FUZZTIME) ./auth/jwt/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeClaims$$' -fuzztime $(FUZZTIME) ./auth/jwt/
	$(GO) test -run '^$$' -fuzz '^FuzzValidAgreesWithValidator$$' -fuzztime $(FUZZTIME) ./auth/jwt/
	$(GO) test -run '^$$' -fuzz '^FuzzFastPath$$' -fuzztime $(FUZZTIME) ./auth/jwt/
	$(GO) test -run '^$$' -fuzz '^FuzzParseTarget$$' -fuzztime $(FUZZTIME) .
	$(GO) test -run '^$$' -fuzz '^FuzzAddrOf$$' -fuzztime $(FUZZTIME) .
	$(GO) test -run '^$$' -fuzz '^FuzzTCPAddrString$$' -fuzztime $(FUZZTIME) .
	$(GO) test -run '^$$' -fuzz '^FuzzSioRequest$$' -fuzztime $(FUZZTIME) .
	$(GO) test -run '^$$' -fuzz '^FuzzSioOffset$$' -fuzztime $(FUZZTIME) .

clean:
	rm -rf bin bench.out

## bench-e2e: Herald vs Node ws, Socket.IO and the floor side by side, same run (QUICK=1: ~3 min);
## writes bench/results/<time>/; a full run also updates docs/benchmarks.md
.PHONY: bench-e2e
bench-e2e:
	./bench/run.sh
