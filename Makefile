# postel — the two set-up commands are `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DATA   ?= postel-data
# Debian packages the test suite needs (installed when running as root).
TEST_DEBS := postgresql swaks libnet-ssleay-perl libio-socket-ssl-perl python3-venv strace eatmydata isync offlineimap3 fetchmail getmail6 mutt knot postfix
RUN_DEBS  := python3-venv

.PHONY: run test check lint typecheck layers unit test-extended test-workers bench bench-pop3 bench-outbound bench-auth bench-imap clean deps-run deps-test

$(BIN)/postel: pyproject.toml
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || $(MAKE) --no-print-directory debs DEBS="$(RUN_DEBS)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	@touch $@

$(VENV)/.test-deps: $(BIN)/postel
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

# Install Debian packages when root and they are missing; otherwise say what is needed.
debs:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections 2>/dev/null || true; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "please install (as root): apt-get install$$missing"; fi; \
	fi

## run: install postel in .venv and start it on the embedded default (./postel-data).
run: $(BIN)/postel
	$(BIN)/postel serve --data $(DATA)

## test: install what the tests need and run the whole suite (lint, types, layers, tests).
test:
	@$(MAKE) --no-print-directory debs DEBS="$(TEST_DEBS)"
	@$(MAKE) --no-print-directory $(VENV)/.test-deps
	@$(MAKE) --no-print-directory check
	$(BIN)/pytest -q -p no:cacheprovider

check: lint typecheck layers

lint:
	$(BIN)/ruff check src tests $(wildcard bench)
	$(BIN)/ruff format --check src tests $(wildcard bench)

typecheck:
	$(BIN)/mypy

layers:
	$(BIN)/lint-imports

## test-extended: the long soak and chaos runs (RELIABILITY.md extended mode).
test-extended: $(VENV)/.test-deps
	POSTEL_EXTENDED=1 $(BIN)/pytest -q -p no:cacheprovider -m "slow or not slow"

## test-workers: the end-to-end suite with two port-25 processes per server ([smtp] processes).
test-workers: $(VENV)/.test-deps
	POSTEL_TEST_SMTP_PROCESSES=2 $(BIN)/pytest -q -p no:cacheprovider tests/e2e

## bench: side-by-side benchmark against Postfix + Dovecot (writes bench/RESULTS.md).
bench: $(VENV)/.test-deps
	bash bench/run.sh

bench-pop3: $(VENV)/.test-deps
	bash bench/pop3.sh

## bench-outbound: queue-to-smtp-sink throughput against Postfix (writes bench/RESULTS.md).
bench-outbound: $(VENV)/.test-deps
	bash bench/outbound.sh

## bench-auth: inbound throughput with sender authentication on vs off (writes bench/RESULTS.md).
bench-auth: $(VENV)/.test-deps
	bash bench/auth.sh

## bench-imap: IMAP on a 10,000-message mailbox, IDLE push and 1,000 IDLE sessions against Dovecot (writes bench/RESULTS.md).
bench-imap: $(VENV)/.test-deps
	bash bench/imap.sh

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
