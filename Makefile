# klp: build, test and install.
#
# The two set-up commands of the README work on a fresh Debian 12 machine as
# root and install what they need:
#   make demo   boot a real kernel in QEMU and patch it live with klp
#   make test   every test: unit tests, linters and the real-kernel suite

SHELL      := /bin/bash
GO         ?= go
VERSION    ?= 0.1.0+$(shell git describe --always --dirty 2>/dev/null || echo unknown)
LDFLAGS    := -s -w -X github.com/klp-project/klp/internal/cli.version=$(VERSION)
PREFIX     ?= /usr/local
DESTDIR    ?=
BINDIR     := $(DESTDIR)$(PREFIX)/bin
MANDIR     := $(DESTDIR)$(PREFIX)/share/man/man8
BASHCOMPDIR := $(DESTDIR)$(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR := $(DESTDIR)$(PREFIX)/share/zsh/site-functions
FISHCOMPDIR := $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
SYSTEMDDIR ?= $(DESTDIR)/etc/systemd/system

.PHONY: all build test unit lint e2e demo bench fuzz docs install uninstall clean deps attack

all: build

# deps installs the build tools a fresh Debian 12 machine lacks (Go itself is
# expected at /usr/local/go or on PATH).
deps:
	@command -v $(GO) >/dev/null || { echo "make: Go is required (https://go.dev/dl/), not found on PATH" >&2; exit 1; }
	@command -v gcc >/dev/null && command -v make >/dev/null && command -v strace >/dev/null || { \
		apt-get update -qq && apt-get install -y -qq -o DPkg::Lock::Timeout=600 gcc make strace; }

build: deps
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/klp ./cmd/klp
	ln -sf klp bin/kgr

# test runs everything CI runs: linters, unit tests with the race detector,
# a short fuzzing pass, the checked-in docs, and the real-kernel suite.
test: deps lint unit fuzz e2e

# Fake trees are many small files: on tmpfs they cost a tenth of what they
# cost on this machine's disk.
TEST_TMPDIR := $(shell [ -d /dev/shm ] && [ -w /dev/shm ] && echo /dev/shm || echo $${TMPDIR:-/tmp})

unit:
	TMPDIR=$(TEST_TMPDIR) $(GO) test -race -count=1 ./...

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$unformatted" ]; then echo "gofmt: $$unformatted" >&2; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags e2e ./e2e/...
	$(GO) tool staticcheck ./...

# fuzz runs each fuzz target briefly; FUZZTIME=5m for a longer search.
FUZZTIME ?= 8s
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		for fn in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "fuzz $$pkg $$fn ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) -fuzzminimizetime=200x $$pkg; \
		done; \
	done

# attack runs every command over hostile inputs (FIFOs, links, bombs,
# garbage trees) with a time limit; make unit runs it too.
attack: deps
	TMPDIR=$(TEST_TMPDIR) $(GO) test -count=1 -run 'TestAttack|TestCopiedTreeIsReadOnly' -v ./cmd/klp/

# e2e boots Debian's 6.1 and 6.12 kernels in QEMU and runs klp in them. It
# installs QEMU, busybox and the kernel headers, and caches the kernels in
# /var/cache/klp-e2e (KLP_E2E_CACHE). Needs root and about 1 GiB of disk.
e2e: deps
	$(GO) test -tags e2e -count=1 -v -timeout 40m ./e2e/

demo: deps
	./e2e/demo.sh

# bench boots Debian's 6.1 kernel in QEMU on 1 and 2 vCPUs and measures
# klp's scan and wait there against a C floor, a bash loop and kpatch's ways
# (see docs/performance.md; 75 minutes on a busy 2-CPU machine). Results go
# to bench/results; BENCH_FLAGS passes options, e.g. BENCH_FLAGS='-vcpus 1'.
BENCH_FLAGS ?=
.PHONY: bench-smoke bench-host
bench: deps
	$(GO) run ./e2e/bench $(BENCH_FLAGS)

# bench-smoke is one repetition of it at 10 and 1,000 threads on one vCPU
# (under a minute).
bench-smoke: deps
	$(GO) run ./e2e/bench -smoke $(BENCH_FLAGS)

# bench-host measures the task scan on this host: the Go benchmarks over
# generated trees, and compare.sh against the C scanner on the real /proc.
bench-host: deps
	$(GO) test -run '^$$' -bench . -benchmem ./bench/ ./internal/poll/
	./bench/compare.sh

docs:
	$(GO) run ./cmd/gen-docs -man docs/man

install: build
	install -d $(BINDIR) $(MANDIR) $(BASHCOMPDIR) $(ZSHCOMPDIR) $(FISHCOMPDIR)
	install -m 0755 bin/klp $(BINDIR)/klp
	ln -sf klp $(BINDIR)/kgr
	install -m 0644 docs/man/klp.8 docs/man/kgr.8 $(MANDIR)/
	$(GO) run ./cmd/gen-docs -completion bin
	install -m 0644 bin/klp.bash $(BASHCOMPDIR)/klp
	install -m 0644 bin/kgr.bash $(BASHCOMPDIR)/kgr
	install -m 0644 bin/_klp bin/_kgr $(ZSHCOMPDIR)/
	install -m 0644 bin/klp.fish bin/kgr.fish $(FISHCOMPDIR)/
	install -d $(SYSTEMDDIR)
	sed 's|@BINDIR@|$(PREFIX)/bin|' contrib/klp.service > $(SYSTEMDDIR)/klp.service
	chmod 0644 $(SYSTEMDDIR)/klp.service
	@echo "installed; 'systemctl enable klp.service' loads installed patches at boot"

uninstall:
	rm -f $(BINDIR)/klp $(BINDIR)/kgr $(MANDIR)/klp.8 $(MANDIR)/kgr.8 \
		$(BASHCOMPDIR)/klp $(BASHCOMPDIR)/kgr $(ZSHCOMPDIR)/_klp $(ZSHCOMPDIR)/_kgr \
		$(FISHCOMPDIR)/klp.fish $(FISHCOMPDIR)/kgr.fish $(SYSTEMDDIR)/klp.service

clean:
	rm -rf bin
