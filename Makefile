# klp: build, test and install.
#
# The two set-up commands of the README work on a fresh Debian 12 machine as
# root and install what they need:
#   make demo   boot a real kernel in QEMU and patch it live with klp
#   make test   every test: unit tests, linters, the packages and the
#               real-kernel suite (busybox and Debian guests)

SHELL      := /bin/bash
GO         ?= go
# The version scheme is packaging/version.sh's: the newest entry of
# packaging/changelog.yml, with ~git<time>.<commit> between releases.
VERSION    ?= $(shell packaging/version.sh)
LDFLAGS    := -s -w -X github.com/klp-project/klp/internal/cli.version=$(VERSION)
PREFIX     ?= /usr/local
DESTDIR    ?=
BINDIR     := $(DESTDIR)$(PREFIX)/bin
# klp-exporter, which klp runs for klp metrics and klp exporter: klp looks
# for it beside itself, then in ../libexec/klp (cli.ExporterProgram).
LIBEXECDIR := $(DESTDIR)$(PREFIX)/libexec/klp
MANDIR     := $(DESTDIR)$(PREFIX)/share/man/man8
BASHCOMPDIR := $(DESTDIR)$(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR := $(DESTDIR)$(PREFIX)/share/zsh/site-functions
FISHCOMPDIR := $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
SYSTEMDDIR ?= $(DESTDIR)/etc/systemd/system

.PHONY: all build test unit lint flake mutate e2e e2e-prepare demo demo-debian bench fuzz docs install uninstall clean deps attack \
	packages packages-build packages-check deps-packages deps-ansible ansible-check

all: build

# deps installs the build tools a fresh Debian 12 machine lacks (Go itself is
# expected at /usr/local/go or on PATH).
deps:
	@command -v $(GO) >/dev/null || { echo "make: Go is required (https://go.dev/dl/), not found on PATH" >&2; exit 1; }
	@command -v gcc >/dev/null && command -v make >/dev/null && command -v strace >/dev/null || { \
		apt-get update -qq && apt-get install -y -qq -o DPkg::Lock::Timeout=600 gcc make strace; }
	@# Prometheus's promtool and servers, for the metrics tests (docs/metrics.md).
	@command -v promtool >/dev/null && command -v prometheus >/dev/null && command -v prometheus-node-exporter >/dev/null || \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends prometheus prometheus-node-exporter

build: deps
	mkdir -p bin
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ ./cmd/klp ./cmd/klp-exporter
	ln -sf klp bin/kgr

# test runs everything CI runs: linters, unit tests with the race detector,
# a short fuzzing pass, the checked-in docs, and the real-kernel suite, in
# that order (scripts/test), with the real-kernel suite's cache filled in
# the background meanwhile (e2e-prepare).
test: deps deps-ansible
	MAKE='$(MAKE)' FUZZTIME='$(FUZZTIME)' scripts/test

# Fake trees are many small files: on tmpfs they cost a tenth of what they
# cost on this machine's disk.
TEST_TMPDIR := $(shell [ -d /dev/shm ] && [ -w /dev/shm ] && echo /dev/shm || echo $${TMPDIR:-/tmp})

# unit's 30-minute limit: under the race detector on a busy 2-CPU machine
# cmd/klp's attack suite alone took 10 minutes (go test's default limit).
unit:
	TMPDIR=$(TEST_TMPDIR) $(GO) test -race -count=1 -timeout 30m ./...

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$unformatted" ]; then echo "gofmt: $$unformatted" >&2; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags e2e ./e2e/...
	$(GO) vet -tags integration ./internal/metrics/
	$(GO) tool staticcheck ./...

# flake runs the unit tests 20 times with the race detector while every
# CPU is kept busy (stress-ng when installed, else a shell busy loop per
# CPU): a test that depends on timing fails here. Not part of make test.
# -short leaves out cmd/klp's attack suite (make attack), which builds
# 300 MB decompression bombs each run: 10 minutes under the race detector.
# FLAKE_PKGS=./internal/admin/... for a subset.
FLAKE_COUNT ?= 20
FLAKE_PKGS ?= ./...
flake:
	@set -e; n=$$(nproc); \
	if command -v stress-ng >/dev/null; then stress-ng --cpu $$n --quiet & else \
		for i in $$(seq $$n); do sh -c 'while :; do :; done' & done; fi; \
	trap 'kill $$(jobs -p) 2>/dev/null' EXIT; \
	echo "flake: go test -race -short -count=$(FLAKE_COUNT) $(FLAKE_PKGS) with $$n busy CPUs"; \
	TMPDIR=$(TEST_TMPDIR) $(GO) test -race -short -count=$(FLAKE_COUNT) -timeout 120m $(FLAKE_PKGS)

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
# Each mutant's test run may take this many times the coverage run: with
# gremlins' default (3) a busy machine times out most mutants while they
# are still compiling.
MUTATE_TIMEOUT_COEFFICIENT ?= 10
mutate: deps
	@test -x $(TOOLS_DIR)/bin/gremlins-$(GREMLINS_VERSION) || { \
		GOBIN=$(TOOLS_DIR)/bin $(GO) install github.com/go-gremlins/gremlins/cmd/gremlins@$(GREMLINS_VERSION) && \
		mv $(TOOLS_DIR)/bin/gremlins $(TOOLS_DIR)/bin/gremlins-$(GREMLINS_VERSION); }
	@set -e; out=$$(mktemp -d); trap 'rm -rf $$out' EXIT; \
	for pkg in $(MUTATE_PKGS); do \
		echo "== mutate $$pkg"; \
		TMPDIR=$(TEST_TMPDIR) $(TOOLS_DIR)/bin/gremlins-$(GREMLINS_VERSION) unleash \
			--workers $(MUTATE_WORKERS) --timeout-coefficient $(MUTATE_TIMEOUT_COEFFICIENT) -S lt ./$$pkg \
			| tee $$out/$$(echo $$pkg | tr / _) | grep -E 'LIVED|TIMED OUT|Killed:|Timed out:|efficacy|coverage'; \
	done; \
	echo; printf '%-22s %7s %6s %8s %12s %9s\n' package killed lived covered 'not covered' efficacy; \
	for pkg in $(MUTATE_PKGS); do \
		awk -v p=$$pkg '/^Killed:/ { gsub(",", ""); k = $$2; l = $$4; nc = $$7 } \
			END { c = k + l; printf "%-22s %7d %6d %8d %12d %8.1f%%\n", p, k, l, c, nc, c ? 100 * k / c : 0 }' \
			$$out/$$(echo $$pkg | tr / _); \
	done

# fuzz runs each fuzz target briefly, one per CPU at a time (FUZZJOBS);
# FUZZTIME=5m for a longer search. Within make test each target fuzzes for
# TEST_FUZZTIME (4s: a smoke pass; make unit replays every seed and
# testdata/fuzz input already); a FUZZTIME given on the command line or in
# the environment applies there too.
FUZZTIME ?= 8s
TEST_FUZZTIME ?= 4s
ifeq ($(filter environment command line,$(origin FUZZTIME)),)
test: FUZZTIME = $(TEST_FUZZTIME)
endif
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz

# integration runs Debian's Prometheus (2.42) and node_exporter (1.5) on
# loopback against klp exporter and klp metrics --textfile over a fixture
# tree with a blocked transition, with TLS and basic auth, and asks
# Prometheus for the series and the dashboard's queries (docs/metrics.md).
# make deps installs both; without them the test says so and is skipped.
.PHONY: integration
integration: deps
	TMPDIR=$(TEST_TMPDIR) $(GO) test -tags integration -count=1 -v -run TestPrometheusIntegration ./internal/metrics/

# attack runs every command over hostile inputs (FIFOs, links, bombs,
# garbage trees) with a time limit; make unit runs it too.
attack: deps
	TMPDIR=$(TEST_TMPDIR) $(GO) test -count=1 -run 'TestAttack|TestCopiedTreeIsReadOnly' -v ./cmd/klp/

# e2e boots Debian's 6.1 and 6.12 kernels in QEMU and runs klp in them, in a
# busybox initramfs and in a Debian 12 system (systemd, sshd, apt). It
# installs QEMU, busybox, mmdebstrap and the kernel headers, and caches the
# kernels and the Debian image in /var/cache/klp-e2e (KLP_E2E_CACHE). Needs
# root and about 2 GiB of disk.
# The Debian guests install the packages of packages-build (made once when
# make test has made them already).
e2e: deps packages-build
	KLP_E2E_PACKAGES=$(abspath $(DIST)) $(GO) test -tags e2e -count=1 -v -timeout 90m ./e2e/

# e2e-prepare fills e2e's cache (e2e/setup.sh's packages and kernels, the
# test modules, the Debian guest image) without running the suite.
e2e-prepare: deps
	$(GO) run ./e2e/prepare

demo: deps
	./e2e/demo.sh

# demo-debian boots the suite's Debian guest (Debian 12, systemd, sshd; its
# image is built with mmdebstrap the first time, a few minutes) and shows
# klp's .deb installed, a patch installed for boot, a reboot, and the patch
# loaded by klp.service before the network, with its journal record.
demo-debian: deps
	$(GO) run ./e2e/demo-debian

# The Ansible collection (contrib/ansible): make unit runs its modules with
# ansible-playbook over fixture trees (contrib/ansible/collection_test.go);
# ansible-check runs ansible-lint on the role and playbooks and the
# ansible-test sanity tests that need no network (the others install their
# own tools from PyPI), on a copy of the collection laid out as
# ansible_collections/klp_project/klp.
# Outside the repository: in a git work tree ansible-test sees only the
# files git tracks, and the copy is not tracked.
ANSIBLE_WORK := $(TEST_TMPDIR)/klp-ansible-check
ANSIBLE_SANITY_OFFLINE := --skip-test ansible-doc --skip-test runtime-metadata --skip-test validate-modules \
	--skip-test pep8 --skip-test pylint --skip-test yamllint --skip-test import
deps-ansible:
	@command -v ansible-playbook >/dev/null && command -v ansible-test >/dev/null && command -v ansible-lint >/dev/null && command -v yamllint >/dev/null || \
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -q -y --no-install-recommends install ansible-core ansible-lint yamllint

ansible-check: deps-ansible
	rm -rf $(ANSIBLE_WORK) && mkdir -p $(ANSIBLE_WORK)/ansible_collections/klp_project/klp
	tar -C contrib/ansible --exclude='*.go' -cf - . | tar -C $(ANSIBLE_WORK)/ansible_collections/klp_project/klp -xf -
	cd $(ANSIBLE_WORK)/ansible_collections/klp_project/klp && \
		ANSIBLE_COLLECTIONS_PATH=$(ANSIBLE_WORK) ansible-lint roles/klp playbooks && \
		yamllint -d '{extends: default, rules: {line-length: {max: 160}, document-start: disable}}' galaxy.yml meta roles playbooks tests && \
		PATH=/usr/bin:$$PATH ansible-test sanity --python-interpreter /usr/bin/python3 --python 3.11 --color no $(ANSIBLE_SANITY_OFFLINE)
	rm -rf $(ANSIBLE_WORK)

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
	install -d $(BINDIR) $(LIBEXECDIR) $(MANDIR) $(BASHCOMPDIR) $(ZSHCOMPDIR) $(FISHCOMPDIR)
	install -m 0755 bin/klp $(BINDIR)/klp
	install -m 0755 bin/klp-exporter $(LIBEXECDIR)/klp-exporter
	ln -sf klp $(BINDIR)/kgr
	install -m 0644 docs/man/klp.8 docs/man/kgr.8 $(MANDIR)/
	$(GO) run ./cmd/gen-docs -completion bin
	install -m 0644 bin/klp.bash $(BASHCOMPDIR)/klp
	install -m 0644 bin/kgr.bash $(BASHCOMPDIR)/kgr
	install -m 0644 bin/_klp bin/_kgr $(ZSHCOMPDIR)/
	install -m 0644 bin/klp.fish bin/kgr.fish $(FISHCOMPDIR)/
	install -d $(SYSTEMDDIR)
	for u in klp.service klp-exporter.service klp-metrics.service klp-metrics.timer; do \
		sed 's|@BINDIR@|$(PREFIX)/bin|' contrib/$$u > $(SYSTEMDDIR)/$$u && chmod 0644 $(SYSTEMDDIR)/$$u || exit 1; \
	done
	@echo "installed; 'systemctl enable klp.service' loads installed patches at boot;"
	@echo "'systemctl enable --now klp-exporter.service' (or klp-metrics.timer) serves docs/metrics.md"

uninstall:
	rm -f $(BINDIR)/klp $(BINDIR)/kgr $(LIBEXECDIR)/klp-exporter $(MANDIR)/klp.8 $(MANDIR)/kgr.8 \
		$(BASHCOMPDIR)/klp $(BASHCOMPDIR)/kgr $(ZSHCOMPDIR)/_klp $(ZSHCOMPDIR)/_kgr \
		$(FISHCOMPDIR)/klp.fish $(FISHCOMPDIR)/kgr.fish $(SYSTEMDDIR)/klp.service \
		$(SYSTEMDDIR)/klp-exporter.service $(SYSTEMDDIR)/klp-metrics.service $(SYSTEMDDIR)/klp-metrics.timer
	-rmdir $(LIBEXECDIR)

# packages builds dist/klp_<version>-1_amd64.deb and
# dist/klp-<version>-1.x86_64.rpm from one description, packaging/nfpm.yaml:
# the static binaries (klp, and klp-exporter in /usr/libexec/klp), the kgr link, the man pages, bash/zsh/fish completions,
# klp.service, klp-exporter.service and klp-metrics.service/.timer (none
# enabled or started on installation), the changelog
# (packaging/changelog.yml) and, in the .deb, the copyright file and
# maintainer scripts. nfpm is pinned and run with go run
# (cached after the first build, which downloads it), so its dependencies
# stay out of go.mod. Then lintian and rpmlint check them: any error or
# warning fails (packaging/lintian-overrides and packaging/rpmlintrc hold
# the justified exceptions).
NFPM        := github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
DIST        ?= dist
PKG_RELEASE ?= 1
PKG_ARCH    ?= amd64
PKG_MAINTAINER ?= klp developers <klp-devel@klp-project.org>
packages: packages-build packages-check

packages-build: deps
	rm -rf $(DIST)/stage && mkdir -p $(DIST)/stage
	rm -f $(DIST)/klp_*.deb $(DIST)/klp-*.rpm
	CGO_ENABLED=0 GOARCH=$(PKG_ARCH) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DIST)/stage/ ./cmd/klp ./cmd/klp-exporter
	$(GO) run ./cmd/gen-docs -completion $(DIST)/stage
	gzip -9n -c docs/man/klp.8 > $(DIST)/stage/klp.8.gz
	gzip -9n -c docs/man/kgr.8 > $(DIST)/stage/kgr.8.gz
	for u in klp.service klp-exporter.service klp-metrics.service klp-metrics.timer; do \
		sed 's|@BINDIR@|/usr/bin|' contrib/$$u > $(DIST)/stage/$$u || exit 1; \
	done
	GO=$(GO) NFPM=$(NFPM) RELEASE=$(PKG_RELEASE) ARCH=$(PKG_ARCH) MAINTAINER='$(PKG_MAINTAINER)' \
		packaging/package.sh $(abspath $(DIST)/stage) $(abspath $(DIST))
	@ls -l $(DIST)/klp_*.deb $(DIST)/klp-*.rpm

packages-check: deps-packages
	lintian --fail-on error,warning $(DIST)/klp_*.deb
	packaging/rpmlint.sh $(DIST)/klp-*.rpm

# deps-packages installs the package checkers.
deps-packages:
	@command -v lintian >/dev/null && command -v rpmlint >/dev/null && command -v rpm >/dev/null && /usr/bin/python3 -c "import magic" 2>/dev/null || \
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -q -y --no-install-recommends install lintian rpmlint rpm python3-magic

clean:
	rm -rf bin $(DIST)
