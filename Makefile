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

.PHONY: all build test unit lint flake mutate e2e demo bench fuzz docs install uninstall clean deps

all: build

# deps installs the build tools a fresh Debian 12 machine lacks (Go itself is
# expected at /usr/local/go or on PATH).
deps:
	@command -v $(GO) >/dev/null || { echo "make: Go is required (https://go.dev/dl/), not found on PATH" >&2; exit 1; }
	@command -v gcc >/dev/null && command -v make >/dev/null || { \
		apt-get update -qq && apt-get install -y -qq -o DPkg::Lock::Timeout=600 gcc make; }

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

# flake runs the unit tests 20 times with the race detector while every
# CPU is kept busy (stress-ng when installed, else a shell busy loop per
# CPU): a test that depends on timing fails here. Not part of make test.
FLAKE_COUNT ?= 20
flake:
	@set -e; n=$$(nproc); \
	if command -v stress-ng >/dev/null; then stress-ng --cpu $$n --quiet & else \
		for i in $$(seq $$n); do sh -c 'while :; do :; done' & done; fi; \
	trap 'kill $$(jobs -p) 2>/dev/null' EXIT; \
	echo "flake: go test -race -count=$(FLAKE_COUNT) ./... with $$n busy CPUs"; \
	TMPDIR=$(TEST_TMPDIR) $(GO) test -race -count=$(FLAKE_COUNT) -timeout 60m ./...

# mutate runs mutation testing (gremlins, installed into $(TOOLS_DIR)) over
# the domain packages: for each, the mutants its own tests leave alive and
# its efficacy (killed / covered mutants); a table of all at the end. It
# takes about an hour on 2 CPUs; MUTATE_PKGS=kmod for one package. Not part
# of make test; docs/testing.md has the latest figures.
GREMLINS_VERSION ?= v0.6.0
TOOLS_DIR ?= $(HOME)/.cache/klp-tools
MUTATE_PKGS ?= kernel livepatch kmod modinfo internal/admin internal/report \
	internal/store internal/lock internal/audit internal/pkgmeta \
	internal/kallsyms internal/modcompress internal/sysfile internal/preflight
MUTATE_WORKERS ?= 2
mutate: deps
	@test -x $(TOOLS_DIR)/bin/gremlins-$(GREMLINS_VERSION) || { \
		GOBIN=$(TOOLS_DIR)/bin $(GO) install github.com/go-gremlins/gremlins/cmd/gremlins@$(GREMLINS_VERSION) && \
		mv $(TOOLS_DIR)/bin/gremlins $(TOOLS_DIR)/bin/gremlins-$(GREMLINS_VERSION); }
	@set -e; out=$$(mktemp -d); trap 'rm -rf $$out' EXIT; \
	for pkg in $(MUTATE_PKGS); do \
		echo "== mutate $$pkg"; \
		TMPDIR=$(TEST_TMPDIR) $(TOOLS_DIR)/bin/gremlins-$(GREMLINS_VERSION) unleash \
			--workers $(MUTATE_WORKERS) -S lt ./$$pkg \
			| tee $$out/$$(echo $$pkg | tr / _) | grep -E 'LIVED|TIMED OUT|Killed:|Timed out:|efficacy|coverage'; \
	done; \
	echo; printf '%-22s %7s %6s %8s %12s %9s\n' package killed lived covered 'not covered' efficacy; \
	for pkg in $(MUTATE_PKGS); do \
		awk -v p=$$pkg '/^Killed:/ { gsub(",", ""); k = $$2; l = $$4; nc = $$7 } \
			END { c = k + l; printf "%-22s %7d %6d %8d %12d %8.1f%%\n", p, k, l, c, nc, c ? 100 * k / c : 0 }' \
			$$out/$$(echo $$pkg | tr / _); \
	done

# fuzz runs each fuzz target briefly; FUZZTIME=5m for a longer search.
FUZZTIME ?= 20s
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		for fn in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "fuzz $$pkg $$fn ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) -fuzzminimizetime=200x $$pkg; \
		done; \
	done

# e2e boots Debian's 6.1 and 6.12 kernels in QEMU and runs klp in them. It
# installs QEMU, busybox and the kernel headers, and caches the kernels in
# /var/cache/klp-e2e (KLP_E2E_CACHE). Needs root and about 1 GiB of disk.
e2e: deps
	$(GO) test -tags e2e -count=1 -v -timeout 40m ./e2e/

demo: deps
	./e2e/demo.sh

# bench measures the task scan against a minimal C scanner (see bench/).
bench: deps
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
