# understudy — build, demo, test.
#
#   make demo   builds everything and runs the built-in scenario
#   make test   builds everything and runs the whole test suite
#
# Needs Go, gcc and make; nothing else on this path.

SHELL   := /bin/bash
GO      ?= go
CC      ?= gcc
BIN     := bin
# Kernels must compute the same bits in every build that runs them (worker,
# cgo in-process, reference): no FMA contraction, no fast-math.
DSPFLAGS := -O2 -ffp-contract=off -fno-fast-math
CFLAGS  ?= -g -Wall -Wextra -Wno-unused-parameter
# Go's build cache keys a cgo package on the files in its own directory: the
# C it pulls in from csrc/ and cdsp/ (us_clock.c through a shim, the layout
# headers) is not part of the key, and an edit there would link a stale
# object. Their hash in CGO_CFLAGS is: any C change rebuilds the cgo packages.
CSRC_HASH := $(shell cat csrc/*.h csrc/*.c cdsp/*.h cdsp/*.c 2>/dev/null | sha256sum | cut -c1-16)
export CGO_CFLAGS := -O2 -g -DUS_CSRC_HASH=$(CSRC_HASH)

RUNTIME_SRC := csrc/us_worker.c csrc/us_replay.c csrc/us_sandbox.c csrc/us_deathword.c csrc/us_registry.c $(filter-out $(wildcard cdsp/*_cgo.c),$(wildcard cdsp/*.c))
WORKER_SRC := $(RUNTIME_SRC)
C_HDRS  := $(wildcard csrc/*.h cdsp/*.h)
GO_SRC  := $(shell find . -name '*.go' -not -path './.git/*') go.mod $(wildcard go.sum)

.PHONY: all demo test bench clean worker deps user-worker install

# Installs the program and its worker side by side (understudy finds the
# worker beside itself), and the systemd unit:
#   make install PREFIX=/usr/local   (default; DESTDIR= for packaging)
PREFIX  ?= /usr/local
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/systemd/system
	install -m 0755 $(BIN)/understudy $(BIN)/understudy-worker $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 deploy/understudy.service $(DESTDIR)$(PREFIX)/lib/systemd/system/

all: $(BIN)/understudy-worker $(BIN)/understudy

worker: $(BIN)/understudy-worker

$(BIN)/understudy-worker: $(WORKER_SRC) $(C_HDRS) Makefile
	@mkdir -p $(BIN)
	$(CC) -std=gnu11 $(CFLAGS) $(DSPFLAGS) -Icsrc -Icdsp -o $@ $(WORKER_SRC) -lm

# The cgo packages' own C files too: a change to runtime/jack/us_jack.c must rebuild it.
$(BIN)/understudy: $(GO_SRC) $(wildcard csrc/*.c) $(C_HDRS) $(wildcard cdsp/*.c) $(wildcard runtime/*/*.c runtime/*/*.h internal/*/*.c internal/*/*.h)
	@mkdir -p $(BIN)
	$(GO) build -o $@ ./cmd/understudy

# A worker carrying a user's own kernel file as well as the built-ins:
#   make user-worker KERNEL=path/to/mykernel.c OUT=path/to/my-worker
user-worker: $(RUNTIME_SRC) $(C_HDRS)
	@test -n "$(KERNEL)" -a -n "$(OUT)" || { echo "usage: make user-worker KERNEL=file.c OUT=worker-path"; exit 2; }
	$(CC) -std=gnu11 $(CFLAGS) $(DSPFLAGS) -Icsrc -Icdsp -o $(OUT) $(RUNTIME_SRC) $(KERNEL) -lm

# What a fresh Debian machine lacks for the tests: cmake, for the CMake
# build of the example kernel. Installed only where missing, as root.
deps:
	@command -v cmake >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing cmake (needed by the SDK tests)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake >/dev/null) || exit 1; \
	  else echo "cmake is missing: install it (apt-get install cmake) to run the SDK tests"; exit 1; fi; }

demo: all
	@mkdir -p out
	$(BIN)/understudy demo --worker $(BIN)/understudy-worker

# UNDERSTUDY_WORKER points the tests at the worker just built. Packages run
# one at a time (-p 1): the real-time tests own the machine's 2 cores. The
# lifetime stress test runs a second time under the race detector (cgo
# allows it here). testsum prints each package's result, failures in full,
# every skip with its reason, and closes with "N passed, N failed, N skipped".
test: all deps $(BIN)/testsum
	@set -o pipefail; { \
	  UNDERSTUDY_WORKER=$(abspath $(BIN)/understudy-worker) $(GO) test -json -p 1 -count=1 -timeout 30m ./...; s1=$$?; \
	  UNDERSTUDY_WORKER=$(abspath $(BIN)/understudy-worker) $(GO) test -json -race -count=1 -timeout 10m \
	    -run 'TestCloseInAnyOrderStress|TestFreeClockBeforeClose|TestCloseStopsTheClock' ./supervisor ./engine; s2=$$?; \
	  exit $$((s1 | s2)); } 2>&1 | $(BIN)/testsum

$(BIN)/testsum: internal/testsum/main.go
	@mkdir -p $(BIN)
	$(GO) build -o $@ ./internal/testsum

# Every figure in bench/RESULTS.md and bench/results.json comes from this
# one run on this machine; bench/raw.txt keeps go test's own output.
# The detection benchmarks kill a fixed 300 times each (a median of fewer
# kills moves with the machine's load more than with the code).
bench: all
	-sh scripts/bench-deps
	UNDERSTUDY_HOLD_WAKE=1 UNDERSTUDY_WORKER=$(abspath $(BIN)/understudy-worker) $(GO) test -p 1 -run '^$$' -bench . -skip Detection -benchtime 300ms \
		./cdsp ./bench ./supervisor > bench/raw.txt; status=$$?; \
	UNDERSTUDY_HOLD_WAKE=1 UNDERSTUDY_WORKER=$(abspath $(BIN)/understudy-worker) $(GO) test -p 1 -run '^$$' -bench 'Detection' -benchtime 300x \
		./supervisor >> bench/raw.txt || status=1; cat bench/raw.txt; \
	$(GO) run ./bench/report -json bench/results.json -md bench/RESULTS.md -plots docs/img -cmd "make bench" \
		-note "Wake-ups (bench, supervisor) ran with the CPU wake-up latency held at 0 µs (UNDERSTUDY_HOLD_WAKE=1, needs root), as a real-time supervisor runs." \
		< bench/raw.txt; \
	exit $$status

clean:
	rm -rf $(BIN) out
